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

/// Why a running task was asked to stop; decides whether its failure ends cancelled or timed_out.
enum class StopReason : std::uint8_t { none, cancelled, timed_out };

/// The error of the last failed attempt; allocated only for tasks that do not succeed.
struct Failure {
  std::string message;
  std::exception_ptr exception;
};

/// A task's TaskOptions::on_final and a weak reference to its record, kept apart from the record.
struct FinalCallback {
  std::function<void(const TaskHandle&)> fn;
  std::weak_ptr<TaskRecord> record;
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
  std::shared_ptr<GroupState> group;
  SchedulerCore* core = nullptr;  // for the running task's polls: the scheduler outlives every run
  RetryPolicy retry;
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
  std::unique_ptr<Failure> failure;  // written before the final state is published, read after
  // TaskOptions::on_final, called and dropped by the finisher. Out of line, with the record's own weak
  // reference (to make the handle it is called with): few tasks have one, and inline the function and an
  // enable_shared_from_this base would cost every queued task 48 bytes instead of this pointer's 8.
  std::unique_ptr<FinalCallback> on_final;

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
