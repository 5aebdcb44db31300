#include "config_commands.hpp"

#include <atomic>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include <taskhive/backpressure.hpp>
#include <taskhive/config.hpp>
#include <taskhive/graph_dot.hpp>
#include <taskhive/pipeline.hpp>
#include <taskhive/plugin_catalog.hpp>
#include <taskhive/scheduler.hpp>
#include <taskhive/workflow.hpp>

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
  for (const auto& dir : first.config.plugins.dirs)
    catalog_options.loader.dirs.push_back(first.config.resolve(*dir));
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
  if (const auto& bp = config.backpressure; bp.enabled) {
    options.admission = std::make_shared<AdmissionController>(AdmissionConfig{
        .max_load = *bp.max_load, .cooldown = *bp.cooldown, .low_watermark = *bp.low_watermark});
  }
  return options;
}

// Where Ctrl-C goes: the workflow, if any, and every pipeline running now (one in pipeline mode, any number
// of a workflow's pipeline tasks).
struct Interrupts {
  std::mutex mutex;
  std::set<PipelineRun*> pipelines;
  WorkflowRunner* workflow = nullptr;
  bool stopping = false;
  bool cancelling = false;

  void stop() {
    std::lock_guard lock(mutex);
    stopping = true;
    if (workflow) workflow->stop();
    for (auto* run : pipelines) run->stop();
  }
  void cancel() {
    std::lock_guard lock(mutex);
    cancelling = true;
    if (workflow) workflow->stop();
    for (auto* run : pipelines) run->cancel();
  }
  // A pipeline about to run; one that starts after an interrupt is stopped or cancelled at once.
  void add(PipelineRun* run) {
    std::lock_guard lock(mutex);
    pipelines.insert(run);
    if (cancelling)
      run->cancel();
    else if (stopping)
      run->stop();
  }
  void remove(PipelineRun* run) {
    std::lock_guard lock(mutex);
    pipelines.erase(run);
  }
};

// A workflow: its tasks on the scheduler; a `pipeline:` task runs its pipeline in the same arena. Ctrl-C
// stops the workflow (nothing new starts) and the pipelines running then (they drain); a second Ctrl-C
// cancels those pipelines (what is in flight is dropped, retries waiting out a backoff included).
int run_workflow(Loaded& loaded, Scheduler& scheduler, const SignalWatcher& signals, Interrupts& interrupts) {
  WorkflowOptions options;
  options.catalog = loaded.catalog.get();
  options.run_pipeline = [&](const WorkflowTask& task, TaskContext& context) -> PipelineOutcome {
    auto run = PipelineRun::create(*task.pipeline, *loaded.catalog, scheduler);
    if (!run) return PipelineOutcome::failure(run.error());
    // The workflow's stop() and the task's timeout reach the pipeline through its source.
    (*run)->stop_when([&context] { return context.cancellation_requested(); });
    interrupts.add(run->get());
    const PipelineSummary summary = (*run)->run();
    interrupts.remove(run->get());
    std::cerr << fmt::format("pipeline of task \"{}\":\n{}", *task.name, format_summary(summary));
    if (!summary.fatal_error.empty()) return PipelineOutcome::failure(summary.fatal_error);
    // Stopped by Ctrl-C or the task's timeout: what it did is not all it had to do.
    if (summary.stopped) return PipelineOutcome::stopped();
    if (summary.ok()) return PipelineOutcome::success();
    return PipelineOutcome::failure(fmt::format("{} items failed", summary.failed_items()));
  };
  WorkflowRunner runner(scheduler, *loaded.config.workflow, std::move(options));
  {
    std::lock_guard lock(interrupts.mutex);
    interrupts.workflow = &runner;
  }
  runner.start();
  if (signals.received() > 0) runner.stop();
  const WorkflowResult result = runner.wait();
  {
    std::lock_guard lock(interrupts.mutex);
    interrupts.workflow = nullptr;
  }
  print_summary(std::cerr, result);
  if (signals.received() > 0) return kExitInterrupted;
  return result.success ? kExitOk : kExitFailures;
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
  Interrupts interrupts;
  SignalWatcher signals(
      [&interrupts] {
        std::cerr << "taskhive run: interrupted; stopping and draining what is in flight (Ctrl-C again to "
                     "cancel)\n";
        interrupts.stop();
      },
      [&interrupts] {
        std::cerr << "taskhive run: cancelling\n";
        interrupts.cancel();
      });

  auto loaded = load(args, "run");
  if (!loaded) return kExitConfig;
  Scheduler scheduler(scheduler_options(loaded->config, args));
  if (loaded->config.workflow) return run_workflow(*loaded, scheduler, signals, interrupts);

  auto run = PipelineRun::create(*loaded->config.pipeline, *loaded->catalog, scheduler);
  if (!run) {
    std::cerr << "taskhive run: " << run.error() << '\n';
    return kExitPlugin;
  }
  interrupts.add(run->get());  // interrupted while it was being set up: stopped or cancelled now
  const PipelineSummary summary = (*run)->run();
  interrupts.remove(run->get());
  std::cerr << format_summary(summary);
  if (signals.received() > 0) return kExitInterrupted;
  return summary.ok() ? kExitOk : kExitFailures;
}

int graph_command(const ConfigArgs& args) {
  auto vars = parse_vars(args.vars);
  if (!vars) return kExitConfig;
  ConfigOptions options;
  options.variables = *vars;
  auto result = load_config(args.config, options);
  std::cerr << format_diagnostics(result.diagnostics);
  if (!result.ok()) return kExitConfig;
  std::cout << to_dot(result.config);
  return kExitOk;
}

}  // namespace taskhive::cli
