#pragma once
// Running a pipeline: a validated config Pipeline becomes a tbb::flow graph in a scheduler's arena, its
// stages served by plugin kinds leased from a PluginCatalog.
//
// @code
//   auto run = taskhive::PipelineRun::create(*config.pipeline, catalog, scheduler);
//   if (!run) return fail(run.error());                   // a kind missing, or a stage's create() refused
//   std::signal(SIGINT, ...);  // first: (*run)->stop() drains; second: (*run)->cancel()
//   taskhive::PipelineSummary summary = (*run)->run();   // blocks until the stream ends
//   std::cerr << taskhive::format_summary(summary);
//   return summary.ok() ? 0 : 1;
// @endcode
//
// The graph:
//   source (input_node: pulls from the source kind, one message per item, so backpressure reaches it)
//     -> in-flight limiter (the pipeline's bound: the largest max_in_flight of its stages)
//     -> for each stage: queue -> limiter (its max_in_flight) -> function node (its concurrency, priority)
//     -> sequencer (with `ordered: true`: source order at the sinks)
//     -> sinks (each item goes to every sink; one serial instance per sink)
// A message is a batch: what one source item became so far (a transform emits 0..n items per input), so the
// sequencer sees exactly one message per source item and ordering costs nothing but the wait.
//
// Failures: a plugin call that fails (an error code, or a call longer than the stage's timeout: a call cannot
// be interrupted, so its outputs are discarded when it returns) is retried per the stage's retry policy
// after its backoff, waiting in a timer, never on a worker, with the item keeping its place in the stage (a
// sink, serial and in item order, retries at once, without backoff; a source is not retried: its next call
// gives the next item); then the stage's on_error decides: `fail` ends the run (the source stops, items in
// flight drain, the run is failed), `skip` drops the item (counted as failed), `dead_letter` sends it, with
// metadata "error" and "stage", to the named sink. A sink named as a dead letter receives only dead letters.
// A source error is an item error of the source stage: the source is asked for the next item afterwards.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "taskhive/config.hpp"
#include "taskhive/loader.hpp"
#include "taskhive/plugin_catalog.hpp"
#include "taskhive/scheduler.hpp"

namespace taskhive {

/// What one stage did in a run.
struct StageStats {
  std::string name;
  std::string role;          ///< "source", "stage", "sink", "dead letter"
  std::uint64_t in = 0;      ///< items that entered it (a source: calls that produced items or failed)
  std::uint64_t out = 0;     ///< items it emitted (a source: passed on; a sink: consumed successfully)
  std::uint64_t failed = 0;  ///< items whose final attempt failed (whatever on_error then did)
  std::uint64_t retries = 0;
  std::uint64_t dead_lettered = 0;  ///< failed items sent to a dead-letter sink
};

/// How a run ended.
struct PipelineSummary {
  std::vector<StageStats> stages;  ///< source, stages, sinks, in config order
  std::uint64_t source_items = 0;
  std::chrono::milliseconds elapsed{0};
  bool stopped = false;    ///< stop() was called: the source stopped early and items in flight drained
  bool cancelled = false;  ///< cancel() was called: items in flight were dropped
  /// Why the run failed as a whole (on_error: fail, a sink's finish failing); empty otherwise.
  std::string fatal_error;
  /// The first failures, "stage: message" (at most 10), for people.
  std::vector<std::string> first_errors;

  std::uint64_t failed_items() const noexcept;
  /// No fatal error, no failed item, not cancelled.
  bool ok() const noexcept;
};

/// A table: one line per stage (in, out, failed, retries, dead letters), then items and time.
std::string format_summary(const PipelineSummary& summary);

namespace detail {
class PipelineState;
}

/// One run of a pipeline. Thread-safe: stop() and cancel() may be called from any thread (a signal-handling
/// thread, not a signal handler) while run() blocks.
class PipelineRun {
 public:
  /// Leases every kind the pipeline uses from `plugins` and creates the stage instances (sources and sinks
  /// now; transform instances as concurrency needs them, each created with the same params). Fails with a
  /// message naming the stage if a kind is missing or of the wrong type, or a create() refuses its params.
  /// `pipeline`, `plugins` and `scheduler` must outlive the run; the leases it takes keep each plugin version
  /// loaded until the run is destroyed, whatever hot reload does meanwhile.
  static LoadResult<std::unique_ptr<PipelineRun>> create(const Pipeline& pipeline, PluginCatalog& plugins,
                                                         Scheduler& scheduler);
  ~PipelineRun();
  PipelineRun(const PipelineRun&) = delete;
  PipelineRun& operator=(const PipelineRun&) = delete;

  /// Runs the stream to its end in the scheduler's arena and returns what happened. Once only.
  PipelineSummary run();

  /// Stops the source; items already in flight go on to the sinks, which are finished as usual.
  void stop() noexcept;
  /// Drops items in flight: stages pass them by without calling plugins. Sinks are flushed (what they took
  /// in is written out), not finished: the stream did not end.
  void cancel() noexcept;

  /// Also stops (as stop()) once `condition` returns true; the source checks it before each item. For a
  /// pipeline run as a workflow task: `run->stop_when([&ctx] { return ctx.cancellation_requested(); })`.
  /// Call before run().
  void stop_when(std::function<bool()> condition);

 private:
  explicit PipelineRun(std::unique_ptr<detail::PipelineState> state);
  std::unique_ptr<detail::PipelineState> state_;
};

}  // namespace taskhive
