#pragma once
// TaskRecord: the shared state behind a TaskHandle, and the one place a task's state machine lives.

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "taskhive/task.hpp"
#include "taskhive/timer.hpp"

namespace taskhive::detail {

class SchedulerCore;
struct TaskRecord;

/// Held in TaskRecord::state by whoever has claimed a task's end, while it records the outcome; final states
/// are published only once everything about the task is written. Not a public state: readers wait it out.
inline constexpr TaskState kFinishing = static_cast<TaskState>(0xFF);

/// Held in TaskRecord::state by the timer's callback while it moves a task from retry_wait back to queued:
/// claiming the task first means that a task someone else has already ended is not touched (nor counted)
/// again. Not a public state: TaskHandle::state() reports it as retry_wait; request_stop() waits it out.
inline constexpr TaskState kRequeueing = static_cast<TaskState>(0xFE);

/// Why a running task was asked to stop; decides whether its failure ends cancelled or timed_out.
enum class StopReason : std::uint8_t { none, cancelled, timed_out };

/// The error of the last failed attempt; allocated only for tasks that do not succeed.
struct Failure {
  std::string message;
  std::exception_ptr exception;
  RejectReason reject_reason = RejectReason::none;  // set for rejected tasks only
};

/// What few tasks have: a retry policy, a group, an on_final callback, a deadline. Kept out of line and
/// allocated only for a task that has one of them, so that a plain task's record stays within two cache lines
/// (see TaskRecord). Written before the task is published; after that only the finisher touches on_final,
/// deadline_timer is atomic, backoff_since is written by whoever holds the task (the state machine hands it
/// over), and the rest is only read.
struct TaskExtras {
  RetryPolicy retry;
  std::shared_ptr<GroupState> group;
  std::function<void(const TaskHandle&)> on_final;
  std::weak_ptr<TaskRecord> self;  // for the handle on_final is called with; weak, or the record owns itself
  Clock::time_point deadline = Clock::time_point::max();
  std::atomic<TimerId> deadline_timer{0};
  int priority = 0;  // for a retry's return to the queue (retries imply extras); the first push is given it
  // When the failed attempt that put the task in retry_wait ended (ns), 0 once it is queued again: a task
  // ended during its backoff reports its last attempt's latency to the admission policy, not the backoff.
  std::int64_t backoff_since = 0;
};

/// Timestamps are nanoseconds on the scheduler's clock, 0 meaning "not yet" (clocks never read 0).
///
/// State machine (each arrow is one compare-and-swap, so exactly one party finalizes a task):
///   queued -> running -> {succeeded, failed, cancelled, timed_out} | retry_wait
///   queued -> {cancelled, timed_out}                 (cancel, group cancel, cancel_all, deadline)
///   retry_wait -> queued | {cancelled, timed_out}
/// rejected records are born final and never reach the scheduler.
///
/// Size: the record and its shared_ptr control block take 128 bytes, two cache lines (checked below). Each
/// record's lines travel from the submitting core to a worker's and, once the memory is reused, back; a third
/// line cost about 0.2 points of 10 µs-task efficiency, so what few tasks have lives in TaskExtras and the
/// name in an allocation of its own.
struct TaskRecord {
  using Function = std::function<void(TaskContext&)>;

  Function fn;
  SchedulerCore* core = nullptr;  // for the running task's polls: the scheduler outlives every run
  std::atomic<std::int64_t> created_ns{0}, queued_ns{0}, started_ns{0}, finished_ns{0};
  std::unique_ptr<const std::string> given_name;  // null for an unnamed task; see name()
  std::uint32_t cancel_epoch = 0;  // the low bits of the scheduler's cancel_all() epoch at submit
  std::uint32_t load = 1;
  std::atomic<std::int32_t> attempts{0};
  std::atomic<TaskState> state{TaskState::queued};
  mutable std::atomic<StopReason> stop{StopReason::none};  // mutable: a poll latches a cancel_all() into it
  std::atomic<bool> has_waiters{false};
  bool admitted = false;               // holds `load` from the scheduler's admission policy until final
  std::unique_ptr<Failure> failure;    // written before the final state is published, read after
  std::unique_ptr<TaskExtras> extras;  // null for a task with no retries, group, on_final or deadline

  const std::string& name() const noexcept {
    static const std::string unnamed;
    return given_name ? *given_name : unnamed;
  }
  /// How messages name the task: "task 'upload'", or "a task" when it has no name.
  std::string label() const { return given_name ? "task '" + *given_name + "'" : std::string("a task"); }
  Clock::time_point deadline() const noexcept { return extras ? extras->deadline : Clock::time_point::max(); }
  std::int32_t max_retries() const noexcept { return extras ? extras->retry.max_retries : 0; }
  GroupState* group() const noexcept { return extras ? extras->group.get() : nullptr; }
  /// Whether the task was submitted before the cancel_all() that moved the scheduler's epoch to `epoch`.
  /// Serial-number arithmetic on 32 bits: right while fewer than 2^31 cancel_all() calls overlap one task;
  /// SchedulerCore::stop_requested() latches a true answer into `stop`, so a cancelled task stays cancelled.
  bool submitted_before(std::uint64_t epoch) const noexcept {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(epoch) - cancel_epoch) > 0;
  }

  bool transition(TaskState from, TaskState to) noexcept {
    return state.compare_exchange_strong(from, to, std::memory_order_acq_rel);
  }
};

// libstdc++'s control block for allocate_shared is 16 bytes; elsewhere the record is merely larger.
#if defined(__GLIBCXX__) && defined(__x86_64__)
static_assert(sizeof(TaskRecord) <= 112, "TaskRecord grew past two cache lines with its control block");
#endif

/// Blocks until `record` is final, or until `until_real` (steady_clock) when given; returns whether it is
/// final.
bool wait_final(const TaskRecord& record, const std::chrono::steady_clock::time_point* until_real);

/// Publishes a final state (and wakes waiters). Called once per record, by whoever won the transition.
void publish_final(TaskRecord& record, TaskState final_state);

/// A person-readable description of an exception: what() for std::exception, a fixed text otherwise.
std::string describe(const std::exception_ptr& error);

}  // namespace taskhive::detail
