// wftest: task kinds for the workflow runner's tests, one that does its job and one that fails.
#include <fstream>
#include <string>

#include <taskhive/plugin.hpp>

namespace {

namespace plugin = taskhive::plugin;

// Writes `text` to the file `path`: a side effect the test can see after the run.
struct Touch {
  static constexpr taskhive_param_decl parameters[] = {
      {"path", TASKHIVE_PARAM_STRING, 1, nullptr, "the file to write"},
      {"text", TASKHIVE_PARAM_STRING, 0, "touched", "what to write in it"}};
  static void run(const plugin::Params& params) {
    const auto path = params.get("path");
    if (!path) throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "touch needs a path");
    std::ofstream out{std::string(*path)};
    out << params.get_or("text", "touched");
    if (!out) throw std::runtime_error("cannot write " + std::string(*path));
  }
};

// Fails with the message it is given, so the test can find it in the task's error.
struct Fail {
  static constexpr taskhive_param_decl parameters[] = {
      {"message", TASKHIVE_PARAM_STRING, 0, "told to fail", "the error message"}};
  static void run(const plugin::Params& params) {
    throw plugin::Error(TASKHIVE_ERR_FAILED, params.get_or("message", "told to fail"));
  }
};

}  // namespace

TASKHIVE_PLUGIN("wftest", "1.0.0", "task kinds for the workflow runner's tests",
                plugin::task<Touch>("touch", "writes a file"), plugin::task<Fail>("fail", "fails"));
