// sample_upper: the sample plugin, written with the author helper (taskhive/plugin.hpp).
//   transform "upper":       uppercases each item's bytes (ASCII) and keeps its metadata
//   task "write_upper":      writes a text, uppercased, to a file
// Built as a MODULE with -fno-gnu-unique into <build>/plugins (apps/plugins/CMakeLists.txt).

#include <algorithm>
#include <cctype>
#include <fstream>
#include <string>

#include <taskhive/plugin.hpp>

namespace {

namespace plugin = taskhive::plugin;

std::string to_upper(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

class Upper {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"prefix", TASKHIVE_PARAM_STRING, 0, "", "text put before every item, uppercased too"},
      {"repeat", TASKHIVE_PARAM_INT, 0, "1", "how many copies of each item to emit"}};

  explicit Upper(const plugin::Params& params)
      : prefix_(to_upper(params.get_or("prefix", ""))),
        repeat_(static_cast<int>(params.get_int("repeat", 1, 0, 1'000'000))) {}

  void process(const plugin::Item& in, plugin::Emitter& emit) {
    const std::string out = prefix_ + to_upper(in.text());
    for (int i = 0; i < repeat_; ++i) emit(out, in.metadata());
  }

 private:
  std::string prefix_;
  int repeat_;
};

struct WriteUpper {
  static constexpr taskhive_param_decl parameters[] = {
      {"path", TASKHIVE_PARAM_STRING, 1, nullptr, "the file to write"},
      {"text", TASKHIVE_PARAM_STRING, 1, nullptr, "what to write, uppercased"}};

  static void run(const plugin::Params& params) {
    const auto path = params.get("path");
    if (!path) throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "parameter \"path\" is required");
    std::ofstream out{std::string(*path)};
    if (!out) throw std::runtime_error("cannot open " + std::string(*path) + " for writing");
    out << to_upper(params.get_or("text", ""));
  }
};

}  // namespace

TASKHIVE_PLUGIN("sample_upper", "1.0.0", "uppercases text: a transform and a task",
                plugin::transform<Upper>("upper",
                                         "uppercases each item's bytes (ASCII), keeping its metadata"),
                plugin::task<WriteUpper>("write_upper", "writes a text, uppercased, to a file"));
