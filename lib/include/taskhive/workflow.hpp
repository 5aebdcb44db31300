#pragma once
// The workflow runner: a validated Workflow (config.hpp) run as a graph of one-shot tasks on a Scheduler.
//
// @code
//   taskhive::Scheduler scheduler({.workers = 4});
//   auto catalog = taskhive::PluginCatalog::open({.loader = {.dirs = {"plugins"}, .probe = true}});
//   taskhive::WorkflowOptions options;
//   options.catalog = catalog->get();                      // for `uses: plugin.kind` tasks
//   options.run_pipeline = [&](const taskhive::WorkflowTask& task, taskhive::TaskContext& ctx) {
//     return run_my_pipeline(*task.pipeline, ctx);         // for `pipeline:` tasks; the CLI wires this
//   };
//   taskhive::WorkflowRunner runner(scheduler, *config.workflow, std::move(options));
//   runner.start();                                        // returns at once; roots are submitted
//   on_sigint([&] { runner.stop(); });                     // from any thread
//   taskhive::WorkflowResult result = runner.wait();
//   taskhive::print_summary(std::cout, result);            // one aligned line per task, then totals
//   return result.success ? 0 : 1;
// @endcode
//
// How it runs. Each task counts its unfinished dependencies. A task is submitted to the scheduler only when
// that count reaches zero, from the TaskOptions::on_final callback of the dependency that ended last, so no
// worker ever waits on another task and a one-worker scheduler cannot deadlock. Priorities, retries
// (RetryConfig -> RetryPolicy: limit -> max_retries, initial -> initial_delay, factor -> multiplier, max ->
// max_delay, jitter) and timeouts (TaskOptions::timeout, measured from the task's release) are the
// scheduler's own.
//
// `if:` decides, once every dependency has ended, whether a task runs or is skipped:
//   success (default)  runs when every dependency succeeded;
//   failure            runs when at least one dependency failed or timed out;
//   always             runs once every dependency has ended, however it ended.
// As in GitHub Actions a skipped task is neither a success nor a failure: a `success` task after a skipped
// one is skipped too (skips travel down the graph), a `failure` task runs only if some dependency really
// failed, and a skipped task does not make the workflow fail. A root task (no dependencies) counts as all
// succeeded and none failed: `success` and `always` roots run, a `failure` root is skipped.
// Cancellation is not a failure either: after stop() nothing more starts, whatever its `if:` says.
//
// Task kinds. `uses: plugin.kind` leases the plugin from WorkflowOptions::catalog for the duration of the
// call (a hot reload meanwhile does not unload it) and calls the kind's run() with the params as key/value C
// strings; a status other than TASKHIVE_OK fails the attempt with the plugin's message. `pipeline:` tasks
// call WorkflowOptions::run_pipeline. A failed attempt is retried as the task's retry says. A task whose run
// returns after its timeout passed ends timed_out, not succeeded: the timeout bounds the task.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "taskhive/clock.hpp"
#include "taskhive/config.hpp"
#include "taskhive/retry.hpp"
#include "taskhive/task.hpp"

namespace taskhive {

class Scheduler;
class PluginCatalog;

namespace detail {
class WorkflowState;
}

/// How a workflow task ended (or where it is, while the run lasts).
enum class WorkflowTaskState : std::uint8_t {
  pending,    ///< waiting for its dependencies
  running,    ///< submitted to the scheduler: queued, running or waiting to retry
  succeeded,  ///< its run returned success
  failed,     ///< its last allowed attempt failed (or the scheduler refused it)
  skipped,    ///< its `if:` was not met; it never ran
  cancelled,  ///< stop() ended it, before or while it ran
  timed_out,  ///< its timeout passed
};

/// "pending", "running", "succeeded", ... as the summary writes them.
std::string_view to_string(WorkflowTaskState state) noexcept;

/// One task's outcome. Times are on the scheduler's clock; `started_at` is the start of the first attempt.
struct WorkflowTaskResult {
  std::string name;
  WorkflowTaskState state = WorkflowTaskState::pending;
  std::string error{};        ///< why it did not succeed; for skipped tasks, which dependencies decided it
  std::int32_t attempts = 0;  ///< runs started, retries included
  std::optional<Clock::time_point> started_at{};
  std::optional<Clock::time_point> finished_at{};
  std::chrono::nanoseconds duration{0};  ///< finished_at - started_at; zero when it never ran
};

/// The outcome of a whole run, tasks in the workflow's order.
struct WorkflowResult {
  std::vector<WorkflowTaskResult> tasks{};
  /// No task failed, timed out or was cancelled (skipped ones are fine).
  bool success = false;
  /// From start() to the end of the last task, on the scheduler's clock.
  std::chrono::nanoseconds elapsed{0};

  /// The task of that name, or nullptr.
  const WorkflowTaskResult* find(std::string_view name) const noexcept;
  std::size_t count(WorkflowTaskState state) const noexcept;
};

/// What a `pipeline:` task's runner reports.
struct PipelineOutcome {
  bool ok = true;
  std::string error{};         ///< why it failed, for the summary
  bool stopped_early = false;  ///< asked to stop (ctx), it drained what was in flight and left the rest

  static PipelineOutcome success() { return {}; }
  static PipelineOutcome failure(std::string message) { return {false, std::move(message)}; }
  /// Not a success: the task ends cancelled (or timed_out, if its timeout was what stopped it).
  static PipelineOutcome stopped() { return {false, "stopped before its pipeline was done", true}; }
};

/// Runs one `pipeline:` task (task.pipeline is set) to its end, on the worker the task runs on. It should
/// poll ctx.cancellation_requested() (stop() and the task's timeout set it) and return soon after it turns
/// true. Throwing is failing, like returning PipelineOutcome::failure.
using PipelineTaskRunner = std::function<PipelineOutcome(const WorkflowTask& task, TaskContext& ctx)>;

struct WorkflowOptions {
  /// Where `uses:` tasks find their plugins; not owned, must outlive the run. Null: such tasks fail.
  PluginCatalog* catalog = nullptr;
  /// Runs `pipeline:` tasks (the CLI wires the pipeline runner here). Empty: such tasks fail.
  PipelineTaskRunner run_pipeline{};
  /// Called once per task as it reaches its final state (skipped included), from whichever thread ended it;
  /// for progress output. Must not block or call back into the runner.
  std::function<void(const WorkflowTaskResult&)> on_task_end{};
};

/// The RetryPolicy a task's retry config stands for.
RetryPolicy to_retry_policy(const RetryConfig& retry) noexcept;

/// One run of one workflow on a scheduler. Thread-safe: stop() may be called from any thread while wait()
/// blocks in another. The scheduler must outlive the runner, and must not be shut down while a run lasts
/// (its refusals would fail the tasks released after).
class WorkflowRunner {
 public:
  /// Copies the workflow. Throws std::invalid_argument if it is not valid (an empty or duplicate name, a
  /// dependency on an unknown task, a cycle): load_config() refuses those, so this is a programming error.
  WorkflowRunner(Scheduler& scheduler, Workflow workflow, WorkflowOptions options = {});
  /// Stops the run if it is still going and waits for it to end.
  ~WorkflowRunner();
  WorkflowRunner(const WorkflowRunner&) = delete;
  WorkflowRunner& operator=(const WorkflowRunner&) = delete;

  /// Submits the root tasks and returns. Once only; a second call throws std::logic_error.
  void start();
  /// Cancels the run: tasks not yet submitted end cancelled without running, submitted ones are cancelled
  /// through the scheduler (a running one sees ctx.cancellation_requested()). Idempotent.
  void stop();
  /// Blocks until every task has ended and returns the result (start() first, if it was not called).
  /// Tasks the scheduler refused for want of queue room are submitted again as the workflow's tasks end;
  /// when none is left to end, the thread in wait() submits them, waiting for room.
  WorkflowResult wait();
  /// start() and wait().
  WorkflowResult run();
  /// True once every task has ended.
  bool done() const;
  /// The scheduler's handle of the named task once it was submitted, for a closer look at a run in progress
  /// (state() says queued, running or retry_wait); an invalid handle for an unknown name, a task not
  /// submitted yet, or one that ended without running (skipped, or cancelled by stop() first).
  TaskHandle handle(std::string_view name) const;

 private:
  std::shared_ptr<detail::WorkflowState> state_;
};

/// Writes one line per task, columns aligned (name, state, attempts, duration, error), then totals:
///
///   build   succeeded  1 attempt   1.20s
///   test    failed     3 attempts  4.02s  exit status 1
///   deploy  skipped                       not run: a dependency did not succeed (test failed)
///   workflow failed: 1 succeeded, 1 failed, 1 skipped in 5.22s
void print_summary(std::ostream& out, const WorkflowResult& result);

}  // namespace taskhive
