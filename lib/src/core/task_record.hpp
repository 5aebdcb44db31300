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
};

/// What few tasks have: a retry policy, a group, an on_final callback. Kept out of line, allocated only for a
/// task that has one of them, so a plain queued task pays one pointer for all three instead of 64 bytes
/// (RetryPolicy alone is 40). Written before the task is published; after that only the finisher touches
/// on_final, and `group` is only read.
struct TaskExtras {
  RetryPolicy retry;
  std::shared_ptr<GroupState> group;
  std::function<void(const TaskHandle&)> on_final;
  std::weak_ptr<TaskRecord> self;  // for the handle on_final is called with; weak, or the record owns itself
};

/// Timestamps are nanoseconds on the scheduler's clock, 0 meaning "not yet" (clocks never read 0).
///
/// State machine (each arrow is one compare-and-swap, so exactly one party finalizes a task):
///   queued -> running -> {succeeded, failed, cancelled, timed_out} | retry_wait
///   queued -> {cancelled, timed_out}                 (cancel, group cancel, cancel_all, deadline)
///   retry_wait -> queued | {cancelled, timed_out}
/// rejected records are born final and never reach the scheduler.
struct TaskRecord {
  using Function = std::function<void(TaskContext&)>;

  Function fn;
  std::string name;
  SchedulerCore* core = nullptr;  // for the running task's polls: the scheduler outlives every run
  Clock::time_point deadline = Clock::time_point::max();
  std::atomic<std::int64_t> created_ns{0}, queued_ns{0}, started_ns{0}, finished_ns{0};
  std::uint64_t cancel_epoch = 0;  // the scheduler's cancel_all() epoch when submitted
  int priority = 0;
  std::uint32_t load = 1;
  bool admitted = false;  // holds `load` from the scheduler's admission policy until final
  std::atomic<std::int32_t> attempts{0};
  std::atomic<TaskState> state{TaskState::queued};
  std::atomic<StopReason> stop{StopReason::none};
  std::atomic<bool> has_waiters{false};
  std::atomic<TimerId> deadline_timer{0};
  std::unique_ptr<Failure> failure;    // written before the final state is published, read after
  std::unique_ptr<TaskExtras> extras;  // null for a task with no retries, group or on_final

  std::int32_t max_retries() const noexcept { return extras ? extras->retry.max_retries : 0; }
  GroupState* group() const noexcept { return extras ? extras->group.get() : nullptr; }

  bool transition(TaskState from, TaskState to) noexcept {
    return state.compare_exchange_strong(from, to, std::memory_order_acq_rel);
  }
};

/// Blocks until `record` is final, or until `until_real` (steady_clock) when given; returns whether it is
/// final.
bool wait_final(const TaskRecord& record, const std::chrono::steady_clock::time_point* until_real);

/// Publishes a final state (and wakes waiters). Called once per record, by whoever won the transition.
void publish_final(TaskRecord& record, TaskState final_state);

/// A person-readable description of an exception: what() for std::exception, a fixed text otherwise.
std::string describe(const std::exception_ptr& error);

}  // namespace taskhive::detail
