#include "config_commands.hpp"

#include <atomic>
#include <iostream>
#include <map>
#include <memory>

#include <fmt/format.h>

#include <taskhive/config.hpp>
#include <taskhive/pipeline.hpp>
#include <taskhive/plugin_catalog.hpp>
#include <taskhive/scheduler.hpp>

#include "signals.hpp"

namespace taskhive::cli {

namespace {

// A config validated against the plugins it can see, and the catalog that saw them.
struct Loaded {
  Config config;
  std::unique_ptr<PluginCatalog> catalog;
};

std::optional<std::map<std::string, std::string>> parse_vars(const std::vector<std::string>& vars) {
  std::map<std::string, std::string> out;
  for (const auto& var : vars) {
    const auto equals = var.find('=');
    if (equals == std::string::npos || equals == 0) {
      std::cerr << fmt::format("taskhive: --var {}: expected NAME=VALUE\n", var);
      return std::nullopt;
    }
    out[var.substr(0, equals)] = var.substr(equals + 1);
  }
  return out;
}

// Reads the config twice: once for its form and its plugin settings, then, with the plugins found, again to
// check every `uses` and its params against the kinds they declare. Prints diagnostics; nothing on errors.
std::optional<Loaded> load(const ConfigArgs& args, std::string_view command) {
  auto vars = parse_vars(args.vars);
  if (!vars) return std::nullopt;
  ConfigOptions options;
  options.variables = *vars;
  // Even with errors, the plugin settings it could read are used, so that every error is reported at once.
  auto first = load_config(args.config, options);

  CatalogOptions catalog_options;
  for (const auto& dir : args.plugin_dirs) catalog_options.loader.dirs.emplace_back(dir);
  for (const auto& dir : first.config.plugins.dirs) catalog_options.loader.dirs.push_back(first.config.resolve(*dir));
  for (auto& dir : plugin_dirs_from_env()) catalog_options.loader.dirs.push_back(std::move(dir));
  if (first.config.plugins.allowlist)
    catalog_options.loader.allowlist = first.config.resolve(**first.config.plugins.allowlist);
  catalog_options.loader.probe = *first.config.plugins.probe;
  if (catalog_options.loader.probe) catalog_options.loader.probe_cache = default_probe_cache_file();
  catalog_options.rescan_interval = *first.config.plugins.rescan_interval;
  auto catalog = PluginCatalog::open(catalog_options);
  if (!catalog) {
    std::cerr << format_diagnostics(first.diagnostics);
    std::cerr << fmt::format("taskhive {}: {}\n", command, catalog.error());
    return std::nullopt;
  }

  const auto records = (*catalog)->records();
  options.plugins = std::span<const PluginRecord>(records);
  auto checked = load_config(args.config, options);
  std::cerr << format_diagnostics(checked.diagnostics);  // warnings too
  if (!checked.ok()) return std::nullopt;
  return Loaded{std::move(checked.config), std::move(catalog).value()};
}

SchedulerOptions scheduler_options(const Config& config, const ConfigArgs& args) {
  SchedulerOptions options;
  options.workers = args.workers ? *args.workers : *config.scheduler.workers;
  options.queue_capacity = *config.scheduler.queue_capacity;
  options.order = *config.scheduler.order == ConfigOrder::strict ? QueueOrder::strict : QueueOrder::aging;
  return options;
}

}  // namespace

int validate_command(const ConfigArgs& args) {
  auto loaded = load(args, "validate");
  if (!loaded) return kExitConfig;
  if (args.print) std::cout << print_config(loaded->config);
  return kExitOk;
}

int run_command(const ConfigArgs& args) {
  // Before any thread starts (the catalog's, the scheduler's workers), so that they all inherit the mask and
  // only the watcher takes SIGINT and SIGTERM.
  block_signals();
  std::atomic<PipelineRun*> pipeline{nullptr};
  SignalWatcher signals(
      [&pipeline] {
        std::cerr << "taskhive run: interrupted; stopping the source and draining (Ctrl-C again to cancel)\n";
        if (PipelineRun* run = pipeline.load()) run->stop();
      },
      [&pipeline] {
        std::cerr << "taskhive run: cancelling\n";
        if (PipelineRun* run = pipeline.load()) run->cancel();
      });

  auto loaded = load(args, "run");
  if (!loaded) return kExitConfig;
  Scheduler scheduler(scheduler_options(loaded->config, args));

  if (loaded->config.pipeline) {
    auto run = PipelineRun::create(*loaded->config.pipeline, *loaded->catalog, scheduler);
    if (!run) {
      std::cerr << "taskhive run: " << run.error() << '\n';
      return kExitPlugin;
    }
    pipeline.store(run->get());
    if (signals.received() > 0) (*run)->stop();  // interrupted while it was being set up
    const PipelineSummary summary = (*run)->run();
    pipeline.store(nullptr);
    std::cerr << format_summary(summary);
    if (signals.received() > 0) return kExitInterrupted;
    return summary.ok() ? kExitOk : kExitFailures;
  }
  std::cerr << "taskhive run: workflows are not runnable from the CLI yet\n";
  return kExitConfig;
}

}  // namespace taskhive::cli
