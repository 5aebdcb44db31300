// libFuzzer target for the config loader: any bytes must end in a result (never a crash, a hang or unbounded
// memory; the sanitizers and libFuzzer's limits watch for those), and a config that loads without errors must
// print, reload without errors and print the same text again.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <taskhive/config.hpp>

#include "config/fake_plugins.hpp"

namespace {

void check_round_trip(const taskhive::ConfigResult& result, const taskhive::ConfigOptions& options) {
  if (!result.ok()) return;
  const std::string printed = taskhive::print_config(result.config);
  const auto again = taskhive::load_config_string(printed, "printed.yaml", options, "/nonexistent");
  if (!again.ok() || taskhive::print_config(again.config) != printed) {
    std::fprintf(stderr, "round trip failed\n--- printed:\n%s\n--- diagnostics:\n%s\n", printed.c_str(),
                 taskhive::format_diagnostics(again.diagnostics).c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static taskhive::test::FakeOptions fake;  // fake plugins, fixed variables, no real environment
  // Half the inputs are checked against the fake plugins, half for form only; pipeline files are looked up in
  // a directory that does not exist.
  taskhive::ConfigOptions options = fake.options;
  if (size % 2 == 0) options.plugins.reset();
  const auto result = taskhive::load_config_string(text, "fuzz.yaml", options, "/nonexistent");
  check_round_trip(result, options);
  return 0;
}
