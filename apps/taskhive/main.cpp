// taskhive: the command-line host. Thin on purpose: parse arguments, call the library, print.
//
//   taskhive run CONFIG [--var NAME=VALUE]... [--plugins DIR]... [--workers N]
//   taskhive validate CONFIG [--var NAME=VALUE]... [--plugins DIR]... [--print]
//   taskhive graph CONFIG [--var NAME=VALUE]...
//   taskhive plugins [--plugins DIR]... [--allowlist FILE] [--no-probe] [--probe-timeout MS] [--no-cache]
//                    [--json]
//
// run and validate: see config_commands.hpp (exit codes 0, 1, 2, 3, 130).
//
// Plugins are probed in a child process (taskhive-probe) by default and listed as "available" or "refused";
// the host loads none of them. --no-probe loads the good ones in this process instead ("loaded"), as before
// the probe existed: a plugin that crashes while loading then takes this command down with it. Probe results
// are cached in $XDG_CACHE_HOME/taskhive/probe-cache.json (else ~/.cache/taskhive/), so unchanged files are
// not probed again; --no-cache bypasses the cache.
//
// Exit status: 0 when the command ran (even if some plugins were refused: that is a finding, not a failure),
// 1 on an unexpected error, 2 on a usage or configuration error (such as a plugin directory that does not
// exist).

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <taskhive/config.hpp>
#include <taskhive/loader.hpp>

#include "config_commands.hpp"

namespace {

nlohmann::ordered_json to_json(const taskhive::PluginRecord& record) {
  nlohmann::ordered_json kinds = nlohmann::ordered_json::array();
  for (const auto& kind : record.kinds) {
    nlohmann::ordered_json params = nlohmann::ordered_json::array();
    for (const auto& p : kind.params) {
      params.push_back(
          {{"name", p.name},
           {"type", p.type},
           {"required", p.required},
           {"default", p.default_value ? nlohmann::ordered_json(*p.default_value) : nlohmann::ordered_json()},
           {"help", p.help}});
    }
    kinds.push_back(
        {{"name", kind.name}, {"type", kind.type}, {"description", kind.description}, {"params", params}});
  }
  return {{"path", record.path.string()},
          {"status", std::string(taskhive::to_string(record.status))},
          {"name", record.name},
          {"version", record.version},
          {"description", record.description},
          {"kinds", kinds},
          {"sha256", record.sha256},
          {"reason", record.reason},
          {"loaded_at",
           record.status == taskhive::PluginStatus::loaded
               ? nlohmann::ordered_json(fmt::format(
                     "{:%FT%TZ}", fmt::gmtime(std::chrono::system_clock::to_time_t(record.loaded_at))))
               : nlohmann::ordered_json()},
          {"load_time_us", record.load_duration.count()}};
}

void print_text(const taskhive::PluginRegistry& registry) {
  if (registry.records().empty()) {
    std::cout << "no plugin files found (plugins are files named *.so in the plugin directories)\n";
    return;
  }
  for (const auto& r : registry.records()) {
    std::string kinds;
    for (const auto& k : r.kinds) kinds += fmt::format("{}{}:{}", kinds.empty() ? "" : ",", k.type, k.name);
    std::cout << fmt::format("{:<9} {:<20} {:<10} {}", taskhive::to_string(r.status),
                             r.name.empty() ? "-" : r.name, r.version.empty() ? "-" : r.version,
                             r.path.string());
    if (r.status == taskhive::PluginStatus::refused)
      std::cout << "  (" << r.reason << ")";
    else
      std::cout << "  [" << kinds << "]";
    std::cout << '\n';
  }
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"taskhive: a task scheduler and plugin host"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "taskhive " TASKHIVE_VERSION);

  taskhive::cli::ConfigArgs config_args;
  auto add_config_options = [&](CLI::App* command) {
    command->add_option("CONFIG", config_args.config, "The pipeline or workflow config (YAML)")
        ->required()
        ->check(CLI::ExistingFile);
    command->add_option("--var", config_args.vars, "NAME=VALUE for ${NAME} in the config (repeatable)");
    command->add_option("--plugins", config_args.plugin_dirs,
                        "A plugin directory (repeatable); searched before the config's plugins.dirs and "
                        "TASKHIVE_PLUGIN_PATH");
  };
  auto* run = app.add_subcommand("run", "Run a pipeline or workflow config");
  add_config_options(run);
  run->add_option("--workers", config_args.workers, "Worker threads (overrides scheduler.workers)")
      ->check(CLI::Range(1u, taskhive::SchedulerConfig::max_workers));
  run->footer(
      "Ctrl-C once: stop the source and drain the items in flight; twice: cancel.\n"
      "Exit status: 0 all good; 1 failed or dead-lettered items or failed tasks; 2 config or usage error; "
      "3 a plugin the config uses could not be loaded; 130 interrupted.");
  auto* validate = app.add_subcommand("validate", "Check a config; print every problem as FILE:LINE:COL");
  add_config_options(validate);
  validate->add_flag("--print", config_args.print, "Print the normalised config, every default filled in");
  auto* graph = app.add_subcommand("graph", "Print the pipeline or workflow as Graphviz DOT (dot -Tsvg)");
  graph->add_option("CONFIG", config_args.config, "The pipeline or workflow config (YAML)")
      ->required()
      ->check(CLI::ExistingFile);
  graph->add_option("--var", config_args.vars, "NAME=VALUE for ${NAME} in the config (repeatable)");

  auto* plugins =
      app.add_subcommand("plugins", "Find, check and probe plugins; print one line per plugin file");
  std::vector<std::string> dirs;
  std::string allowlist;
  bool json = false;
  bool no_probe = false;
  bool no_cache = false;
  int probe_timeout_ms = 5000;
  plugins->add_option("--plugins", dirs,
                      "A plugin directory (repeatable); searched before TASKHIVE_PLUGIN_PATH");
  plugins->add_option("--allowlist", allowlist,
                      "Load only files whose SHA-256 this file lists (\"SHA256 NAME\" lines)");
  plugins->add_flag("--json", json, "Print a JSON array of objects instead of text");
  plugins->add_flag("--no-probe", no_probe,
                    "Load plugins in this process instead of probing them in a child process");
  plugins->add_flag("--no-cache", no_cache,
                    "Neither read nor write the probe cache ($XDG_CACHE_HOME/taskhive/probe-cache.json)");
  plugins->add_option("--probe-timeout", probe_timeout_ms, "Time limit per plugin in the probe, milliseconds")
      ->check(CLI::Range(1, 3'600'000));  // up to an hour
  plugins->footer(
      "Environment: TASKHIVE_PLUGIN_PATH, colon-separated absolute directories, searched after --plugins.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (run->parsed()) return taskhive::cli::run_command(config_args);
  if (graph->parsed()) return taskhive::cli::graph_command(config_args);
  if (validate->parsed()) return taskhive::cli::validate_command(config_args);

  taskhive::LoaderOptions options;
  for (const auto& d : dirs) options.dirs.emplace_back(d);
  for (auto& d : taskhive::plugin_dirs_from_env()) options.dirs.push_back(std::move(d));
  if (!allowlist.empty()) options.allowlist = allowlist;
  options.probe = !no_probe;
  options.probe_timeout = std::chrono::milliseconds(probe_timeout_ms);
  if (!no_cache) options.probe_cache = taskhive::default_probe_cache_file();
  if (options.dirs.empty()) {
    std::cerr << "taskhive plugins: no plugin directories; give --plugins DIR or set TASKHIVE_PLUGIN_PATH\n";
    return 2;
  }

  auto registry = taskhive::load_plugins(options);
  if (!registry) {
    std::cerr << "taskhive plugins: " << registry.error() << '\n';
    return 2;
  }
  if (json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& r : registry->records()) out.push_back(to_json(r));
    // Bytes that are not UTF-8 (a file name may hold any) print as U+FFFD instead of failing the listing.
    std::cout << out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
  } else {
    print_text(*registry);
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "taskhive: " << e.what() << '\n';
  return 1;
}
