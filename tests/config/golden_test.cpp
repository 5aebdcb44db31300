// The corpus of bad configs: each bad/NAME.yaml is loaded against the fake plugins and its diagnostics must
// be exactly bad/NAME.expected. File names in diagnostics are relative ("bad/NAME.yaml"), so the goldens do
// not depend on where the checkout is. TASKHIVE_UPDATE_GOLDEN=1 rewrites the goldens (then read the diff).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <taskhive/config.hpp>

#include "config/fake_plugins.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path test_dir = TASKHIVE_CONFIG_TEST_DIR;

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<fs::path> files(const fs::path& dir, const std::string& extension) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == extension) out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("every bad config gives exactly its golden diagnostics") {
  const bool update = std::getenv("TASKHIVE_UPDATE_GOLDEN") != nullptr;
  const auto corpus = files(test_dir / "bad", ".yaml");
  REQUIRE(corpus.size() >= 15);
  for (const auto& path : corpus) {
    taskhive::test::FakeOptions fake;
    const std::string name = "bad/" + path.filename().string();
    const auto result = taskhive::load_config_string(read_all(path), name, fake.options, path.parent_path());
    const std::string actual = taskhive::format_diagnostics(result.diagnostics);
    fs::path expected_path = path;
    expected_path.replace_extension(".expected");
    if (update) std::ofstream(expected_path, std::ios::binary) << actual;
    INFO(name);
    REQUIRE(fs::exists(expected_path));
    CHECK(actual == read_all(expected_path));
    CHECK_FALSE(result.ok());  // every file of the corpus has at least one error
  }
}

TEST_CASE("every golden has its config") {
  for (const auto& path : files(test_dir / "bad", ".expected")) {
    fs::path config = path;
    config.replace_extension(".yaml");
    INFO(path.string());
    CHECK(fs::exists(config));
  }
}

TEST_CASE("every good config loads without errors or warnings and prints stably") {
  const auto corpus = files(test_dir / "good", ".yaml");
  REQUIRE(corpus.size() >= 3);
  for (const auto& path : corpus) {
    taskhive::test::FakeOptions fake;
    INFO(path.string());
    const auto result = taskhive::load_config(path, fake.options);
    CHECK(taskhive::format_diagnostics(result.diagnostics).empty());
    REQUIRE(result.ok());
    const std::string printed = taskhive::print_config(result.config);
    const auto again =
        taskhive::load_config_string(printed, "printed.yaml", fake.options, path.parent_path());
    INFO(printed);
    CHECK(taskhive::format_diagnostics(again.diagnostics).empty());
    CHECK(taskhive::print_config(again.config) == printed);
  }
}
