#pragma once
// Scheduler: runs tasks on a oneTBB arena in priority order, with retries, deadlines, cancellation, bounded
// queueing and graceful shutdown.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "taskhive/admission.hpp"
#include "taskhive/clock.hpp"
#include "taskhive/metrics.hpp"
#include "taskhive/task.hpp"

namespace taskhive {

namespace detail {
class SchedulerCore;

/// Callables that can be empty: tested before they are queued.
template <typename T>
inline constexpr bool may_be_empty_callable = std::is_pointer_v<T>;
template <typename Signature>
inline constexpr bool may_be_empty_callable<std::function<Signature>> = true;
}  // namespace detail

/// The order in which queued tasks start.
enum class QueueOrder {
  /// Higher priority first, FIFO within a priority. A steady stream of high-priority work starves the rest.
  strict,
  /// Higher priority first, but waiting earns priority: a task queued at time t with priority p is ordered by
  /// its virtual start time t - p * aging_step, FIFO on ties. A task is therefore never overtaken by one of
  /// priority P submitted more than (P - p) * aging_step after it, so its wait is bounded by that window plus
  /// the time to run what was already ahead of it.
  aging,
};

/// How to stop: finish all accepted work, or cancel it.
enum class ShutdownMode {
  /// stop accepting, run everything queued and every pending retry, then return
  drain,
  /// stop accepting, end queued and retry-waiting tasks as cancelled, ask running ones to stop (as
  /// cancel_all() does: their TaskContext::cancellation_requested() turns true) and wait for them
  cancel,
};

struct SchedulerOptions {
  /// The most workers a scheduler takes; more throws std::invalid_argument.
  static constexpr unsigned max_workers = 65'536;
  /// Threads in the arena; 0 means std::thread::hardware_concurrency(). At most max_workers.
  unsigned workers = 0;
  /// Tasks that may wait in the queue at once (retries coming back from the timer are never refused); at
  /// least 1, and anything from INT64_MAX up (SIZE_MAX, say) means unbounded.
  std::size_t queue_capacity = 100'000;
  QueueOrder order = QueueOrder::aging;
  /// Under QueueOrder::aging, the waiting time worth one priority level; must be positive.
  std::chrono::nanoseconds aging_step = std::chrono::milliseconds(100);
  /// Source of time for deadlines, retries, aging and timestamps; tests pass a ManualClock.
  std::shared_ptr<Clock> clock = Clock::steady();
  /// Worker threads are named "<name>-w<N>" (15 characters at most, a Linux limit), the timer "<name>-timer".
  std::string name = "taskhive";
  /// Load shedding at submit: a task the policy refuses ends rejected with the policy's reason. The task's
  /// TaskOptions::load is admitted at submit and released at its final state, however it ends.
  std::shared_ptr<AdmissionPolicy> admission{};
};

/// A pool of workers on a tbb::task_arena that runs submitted tasks in priority order.
///
/// @code
///   taskhive::Scheduler scheduler({.workers = 4});
///   auto report = scheduler.submit([] { build_report(); }, {.name = "report", .priority = 10});
///   auto flaky = scheduler.submit([](taskhive::TaskContext& ctx) { upload(ctx); },
///                                 {.name = "upload", .retry = {.max_retries = 3}});
///   report.wait();
///   scheduler.shutdown();        // drain: everything accepted runs to a final state
///   auto m = scheduler.metrics();
/// @endcode
///
/// Guarantees: every method is thread-safe. Every accepted task reaches exactly one final state, so at
/// quiescence submitted == succeeded + failed + cancelled + timed_out (rejections are counted apart). An
/// exception of any type thrown by a task is caught and recorded; none reaches oneTBB. Workers never sleep on
/// a retry: backoffs wait in one timer thread. The destructor drains.
///
/// Tasks must not block waiting on other tasks of the same scheduler (as with any fixed-size pool, that can
/// deadlock once every worker waits).
class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  /// Submits a task, waiting for queue room if the queue is full. Rejected only while shutting down or by
  /// the admission policy (SchedulerOptions::admission). The task counts as queued from when it gets room.
  /// `fn` is callable as fn(TaskContext&) or fn(); a throw is a failed attempt. An empty callable (a null
  /// std::function or function pointer) or a retry multiplier that is not a finite number >= 1 throws
  /// std::invalid_argument here, before anything is counted, as in try_submit() and submit_for().
  /// From inside one of this scheduler's own tasks use try_submit(): waiting there for room can deadlock
  /// once every worker waits. The callable is destroyed as the task ends, before its final state is
  /// published (a final task holds none of its captures), on the thread that ends it: a capture's destructor
  /// must not call state(), wait() or wait_for() on the task's own handle, which would wait for itself.
  template <typename F>
  TaskHandle submit(F&& fn, TaskOptions options = {}) {
    return submit_impl(wrap(std::forward<F>(fn)), std::move(options), Wait::forever, {});
  }

  /// Submits a task without waiting: on a full queue (or during shutdown) the handle is already rejected and
  /// its error() says why.
  template <typename F>
  TaskHandle try_submit(F&& fn, TaskOptions options = {}) {
    return submit_impl(wrap(std::forward<F>(fn)), std::move(options), Wait::never, {});
  }

  /// Submits a task, waiting up to `timeout` (on the scheduler's clock) for queue room.
  template <typename F>
  TaskHandle submit_for(std::chrono::nanoseconds timeout, F&& fn, TaskOptions options = {}) {
    return submit_impl(wrap(std::forward<F>(fn)), std::move(options), Wait::until_timeout, timeout);
  }

  /// Cancels every task accepted so far: queued and retry-waiting ones end cancelled, running ones are asked
  /// to stop. Tasks submitted afterwards are unaffected.
  void cancel_all();

  /// Blocks until no accepted task is in flight (it does not stop new submissions). Throws std::logic_error
  /// when called from one of this scheduler's own tasks or on_final callbacks, which would wait for itself
  /// (not caught, and so still a deadlock: a call from inside a parallel algorithm such as tbb::parallel_for
  /// that the task started, which runs under the algorithm's own oneTBB context, or from a task of another
  /// scheduler that is cancelling one of this scheduler's tasks).
  void wait_idle();

  /// Runs `fn` on the calling thread inside the scheduler's task arena (tbb::task_arena::execute), so that a
  /// tbb::flow graph built and waited for in `fn` runs its nodes on the scheduler's workers, with the
  /// caller joining in while it waits. Exceptions from `fn` propagate.
  ///
  /// @code
  ///   scheduler.execute([&] { tbb::flow::graph g; build(g); g.wait_for_all(); });
  /// @endcode
  void execute(const std::function<void()>& fn);

  /// Stops accepting work and ends it as `mode` says; returns when every accepted task is final and the
  /// workers are idle. Idempotent; the destructor calls shutdown(drain). Throws std::logic_error when called
  /// from one of this scheduler's own tasks or on_final callbacks, as wait_idle() does. (The
  /// destructor cannot throw: run there, for instance because a task held the last reference to the
  /// scheduler, it logs why and calls std::terminate rather than hang.)
  void shutdown(ShutdownMode mode = ShutdownMode::drain);

  MetricsSnapshot metrics() const;

  unsigned workers() const noexcept;
  const SchedulerOptions& options() const noexcept;

 private:
  using TaskFunction = std::function<void(TaskContext&)>;
  enum class Wait { never, forever, until_timeout };

  template <typename F>
  static TaskFunction wrap(F&& fn) {
    using Fn = std::decay_t<F>;
    // Refused now rather than failing with std::bad_function_call (or crashing) when a worker runs it.
    if constexpr (detail::may_be_empty_callable<Fn>) {
      if (!fn) throw std::invalid_argument("taskhive: an empty callable was submitted as a task");
    }
    if constexpr (std::is_invocable_v<Fn&, TaskContext&>) {
      return TaskFunction(std::forward<F>(fn));
    } else {
      static_assert(std::is_invocable_v<Fn&>, "a task is callable as fn(TaskContext&) or fn()");
      return [f = Fn(std::forward<F>(fn))](TaskContext&) mutable { f(); };
    }
  }

  TaskHandle submit_impl(TaskFunction fn, TaskOptions options, Wait wait, std::chrono::nanoseconds timeout);

  std::shared_ptr<detail::SchedulerCore> core_;
};

}  // namespace taskhive
