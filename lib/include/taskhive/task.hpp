#pragma once
// Tasks: what a caller submits (a callable plus TaskOptions), what the callable sees while it runs
// (TaskContext), and what the caller holds afterwards (TaskHandle).

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "taskhive/clock.hpp"
#include "taskhive/retry.hpp"
#include "taskhive/task_group.hpp"

namespace taskhive {

namespace detail {
struct TaskRecord;
}

class TaskHandle;

/// Where a task is in its life. The last five are final: a task reaches exactly one of them, once.
enum class TaskState : std::uint8_t {
  queued,      ///< accepted, waiting for a worker
  running,     ///< a worker is running the callable
  retry_wait,  ///< failed, waiting out its backoff in the timer before it is queued again
  succeeded,   ///< the callable returned
  failed,      ///< the callable threw on its last allowed attempt
  cancelled,   ///< cancelled before it ran, or threw after cancellation was requested
  timed_out,   ///< its deadline passed while queued, or it threw after its deadline passed
  rejected,    ///< never accepted: TaskHandle::reject_reason() says why
};

/// "queued", "running", ... as written in logs and metrics.
std::string_view to_string(TaskState state) noexcept;

/// Why a task was rejected: what a caller decides on, where TaskHandle::error() is written for a person.
///
/// @code
///   auto task = scheduler.try_submit(work);
///   if (task.reject_reason() == taskhive::RejectReason::queue_full) backlog.push(work);  // room comes back
///   else if (task.reject_reason() == taskhive::RejectReason::overloaded) return http_503();  // shed load
/// @endcode
enum class RejectReason : std::uint8_t {
  none,           ///< not rejected (accepted, or not final yet)
  queue_full,     ///< every queue slot was taken (try_submit), or none freed up in time (submit_for)
  overloaded,     ///< the scheduler's admission policy refused it, or failed while deciding
  shutting_down,  ///< shutdown() had begun: the scheduler accepts no new tasks
};

/// "none", "queue_full", "overloaded", "shutting_down".
std::string_view to_string(RejectReason reason) noexcept;

/// True for succeeded, failed, cancelled, timed_out and rejected.
constexpr bool is_final(TaskState state) noexcept {
  return state >= TaskState::succeeded && state <= TaskState::rejected;
}

/// How a task is scheduled. Every field has a sensible default, so designated initializers read well:
///
/// @code
///   scheduler.submit(work, {.name = "index", .priority = 5, .timeout = std::chrono::seconds(2)});
/// @endcode
struct TaskOptions {
  /// Shown in logs and errors; need not be unique.
  std::string name{};
  /// Higher runs first. Under the aging order a lower priority waits longer but never forever.
  int priority = 0;
  RetryPolicy retry{};
  /// Measured from submission; ends the task as timed_out when it passes. Covers queueing, retries and runs.
  std::optional<std::chrono::nanoseconds> timeout{};
  /// An absolute deadline on the scheduler's clock; the earlier of this and `timeout` applies.
  std::optional<Clock::time_point> deadline{};
  /// Tasks in one group are cancelled together with TaskGroup::cancel().
  std::optional<TaskGroup> group{};
  /// The task's weight for admission control (backpressure); 1 unless some tasks are heavier than others.
  std::uint32_t load = 1;
  /// Called once, just after the task reaches its final state (rejected included), with its handle: what a
  /// caller uses to start work that follows this task without a thread blocked in wait() (the workflow
  /// runner releases dependents this way). It runs on the thread that ended the task: a worker, the timer
  /// thread, or the caller of submit, cancel, cancel_all or shutdown. So keep it short and never block in it:
  /// to start more work call try_submit (submit may wait for queue room, which on a worker can deadlock).
  /// wait_idle() and shutdown() return only after it returned. An exception from it is logged and dropped.
  /// A task it ends (cancel()) runs its own on_final there too, on the same stack: a chain of tens of
  /// thousands of tasks each cancelling the next from on_final can overflow the stack.
  std::function<void(const TaskHandle&)> on_final{};
};

/// Thrown by TaskContext::throw_if_cancelled(); a task that lets it escape ends cancelled or timed_out.
class OperationCancelled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What a running task sees: its name, attempt number and cancellation. Valid only during the call.
///
/// @code
///   scheduler.submit([](taskhive::TaskContext& ctx) {
///     for (auto& chunk : chunks) {
///       ctx.throw_if_cancelled();                     // cooperative: cancel() and deadlines are polled
///       process(chunk);
///     }
///   });
/// @endcode
class TaskContext {
 public:
  explicit TaskContext(detail::TaskRecord& record) noexcept : record_(record) {}
  TaskContext(const TaskContext&) = delete;
  TaskContext& operator=(const TaskContext&) = delete;

  const std::string& name() const noexcept;
  /// 1 on the first run, 2 on the first retry, ...
  std::int32_t attempt() const noexcept;
  /// True once cancel() was called on the task, its group or the scheduler, or its deadline has passed.
  bool cancellation_requested() const noexcept;
  /// True once the deadline has passed (a subset of cancellation_requested()).
  bool deadline_expired() const noexcept;
  /// Throws OperationCancelled if cancellation_requested().
  void throw_if_cancelled() const;

 private:
  detail::TaskRecord& record_;
};

/// The caller's view of a submitted task: wait for it, ask how it ended, cancel it.
///
/// @code
///   auto task = scheduler.submit([] { compress("big.log"); }, {.name = "compress"});
///   if (!task.wait_for(std::chrono::seconds(5))) task.cancel();
///   task.wait();
///   if (task.state() != taskhive::TaskState::succeeded) fmt::print("{}: {}\n", task.name(), task.error());
/// @endcode
///
/// Cheap to copy (a shared reference); thread-safe; may outlive the scheduler. A default-constructed handle
/// refers to no task: every query on it throws std::logic_error.
class TaskHandle {
 public:
  TaskHandle() = default;
  explicit TaskHandle(std::shared_ptr<detail::TaskRecord> record) noexcept : record_(std::move(record)) {}

  bool valid() const noexcept { return record_ != nullptr; }
  TaskState state() const;
  bool done() const { return is_final(state()); }
  const std::string& name() const;
  /// Runs started so far, retries included.
  std::int32_t attempts() const;

  /// Blocks until the task reaches a final state and returns it.
  TaskState wait() const;
  /// Returns true if the task reached a final state within `timeout` (real time).
  bool wait_for(std::chrono::nanoseconds timeout) const;

  /// A queued or retry-waiting task ends cancelled without running again, and frees its queue slot. A running
  /// task is asked to stop (TaskContext::cancellation_requested()). Returns false if the task was already
  /// final.
  bool cancel() const;

  /// Why the task did not succeed, written for a person ("" while it has not failed). For failed tasks the
  /// exception's what(); for rejections the reason, e.g. "queue full: 1000 of 1000 slots in use".
  std::string error() const;
  /// For a rejected task, why, as a value to branch on; RejectReason::none for every other task.
  RejectReason reject_reason() const;
  /// The exception thrown by the last failed attempt of a task that did not succeed, or nullptr.
  std::exception_ptr exception() const;

  /// When the task was submitted, last queued, last started and finished; nullopt for what has not happened.
  Clock::time_point created_at() const;
  std::optional<Clock::time_point> queued_at() const;
  std::optional<Clock::time_point> started_at() const;
  std::optional<Clock::time_point> finished_at() const;

 private:
  const detail::TaskRecord& record() const;
  std::shared_ptr<detail::TaskRecord> record_;
};

}  // namespace taskhive
