#pragma once
// `taskhive run`, `validate` and `graph`: a config file, its variables and plugin directories, then the
// library's config layer, plugin catalog, pipeline and workflow runners.

#include <optional>
#include <string>
#include <vector>

namespace taskhive::cli {

/// What run, validate and graph share.
struct ConfigArgs {
  std::string config;
  std::vector<std::string> vars;         ///< "name=value"
  std::vector<std::string> plugin_dirs;  ///< --plugins, before the config's plugins.dirs
  std::optional<unsigned> workers;       ///< --workers (run)
  bool print = false;                    ///< --print (validate)
};

/// Exit codes, as documented in the README: 0 all good; 1 finished with failed or dead-lettered items or
/// failed tasks; 2 config or usage error; 3 a plugin the config uses could not be loaded; 130 interrupted.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailures = 1;
inline constexpr int kExitConfig = 2;
inline constexpr int kExitPlugin = 3;
inline constexpr int kExitInterrupted = 130;

int run_command(const ConfigArgs& args);
int validate_command(const ConfigArgs& args);
/// Prints the config's pipeline or workflow as Graphviz DOT on stdout (checks form only, loads no plugin).
int graph_command(const ConfigArgs& args);

}  // namespace taskhive::cli
