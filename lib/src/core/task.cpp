#include "taskhive/task.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "scheduler_core.hpp"
#include "task_record.hpp"
#include "time_math.hpp"

namespace taskhive {

std::chrono::nanoseconds RetryPolicy::ceiling(std::int32_t n) const noexcept {
  const auto cap = std::max(max_delay, std::chrono::nanoseconds::zero());
  // Nothing grows from nothing, however far out: without this, 0 * pow() = 0 * inf = NaN past n ~ 1024 and
  // the retry suddenly waited the whole cap.
  if (initial_delay <= std::chrono::nanoseconds::zero()) return std::chrono::nanoseconds::zero();
  const double scaled = static_cast<double>(initial_delay.count()) * std::pow(multiplier, std::max(n, 0));
  // Compared in double and returned as the cap itself: converting a double at or near 2^63 back to int64
  // would overflow. !(a < b) also catches NaN and infinity.
  if (!(scaled < static_cast<double>(cap.count()))) return cap;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::max(scaled, 0.0)));
}

std::chrono::nanoseconds RetryPolicy::delay(std::int32_t n, double u) const noexcept {
  const auto top = ceiling(n);
  if (!jitter) return top;
  const double drawn = std::clamp(u, 0.0, 1.0) * static_cast<double>(top.count());
  if (!(drawn < static_cast<double>(top.count()))) return top;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(drawn));
}

std::string_view to_string(TaskState state) noexcept {
  switch (state) {
    case TaskState::queued:
      return "queued";
    case TaskState::running:
      return "running";
    case TaskState::retry_wait:
      return "retry_wait";
    case TaskState::succeeded:
      return "succeeded";
    case TaskState::failed:
      return "failed";
    case TaskState::cancelled:
      return "cancelled";
    case TaskState::timed_out:
      return "timed_out";
    case TaskState::rejected:
      return "rejected";
  }
  return "unknown";
}

std::string_view to_string(RejectReason reason) noexcept {
  switch (reason) {
    case RejectReason::none:
      return "none";
    case RejectReason::queue_full:
      return "queue_full";
    case RejectReason::overloaded:
      return "overloaded";
    case RejectReason::shutting_down:
      return "shutting_down";
  }
  return "unknown";
}

// --- TaskContext
// ---------------------------------------------------------------------------------------------

const std::string& TaskContext::name() const noexcept {
  return record_.name();
}
std::int32_t TaskContext::attempt() const noexcept {
  return record_.attempts.load(std::memory_order_relaxed);
}
bool TaskContext::cancellation_requested() const noexcept {
  return record_.core->stop_requested(record_);
}
bool TaskContext::deadline_expired() const noexcept {
  return record_.core->deadline_passed(record_);
}

void TaskContext::throw_if_cancelled() const {
  if (!cancellation_requested()) return;  // true for a passed deadline too
  // Which one is decided after the fact: asked the other way round, a deadline passing between the two looks
  // was reported as a cancel (both flags only ever go from false to true).
  if (deadline_expired()) throw OperationCancelled(record_.label() + " passed its deadline");
  throw OperationCancelled(record_.label() + " was cancelled");
}

// --- TaskHandle
// ----------------------------------------------------------------------------------------------

const detail::TaskRecord& TaskHandle::record() const {
  if (!record_) throw std::logic_error("taskhive::TaskHandle: this handle refers to no task");
  return *record_;
}

TaskState TaskHandle::state() const {
  const auto& r = record();
  auto state = r.state.load(std::memory_order_acquire);
  if (state == detail::kRequeueing) return TaskState::retry_wait;  // on its way back to the queue
  if (state == detail::kFinishing) {  // its end is being recorded, for well under a microsecond: wait it out
    detail::wait_final(r, nullptr);
    state = r.state.load(std::memory_order_acquire);
  }
  return state;
}
const std::string& TaskHandle::name() const {
  return record().name();
}
std::int32_t TaskHandle::attempts() const {
  return record().attempts.load(std::memory_order_acquire);
}

TaskState TaskHandle::wait() const {
  detail::wait_final(record(), nullptr);
  return state();
}

bool TaskHandle::wait_for(std::chrono::nanoseconds timeout) const {
  const auto until = detail::saturating_add(std::chrono::steady_clock::now(), timeout);
  return detail::wait_final(record(), &until);
}

bool TaskHandle::cancel() const {
  record();
  return detail::request_stop(record_, detail::StopReason::cancelled);
}

std::string TaskHandle::error() const {
  const auto& r = record();
  if (!is_final(r.state.load(std::memory_order_acquire)) || !r.failure) return {};
  return r.failure->message;
}

RejectReason TaskHandle::reject_reason() const {
  const auto& r = record();
  if (r.state.load(std::memory_order_acquire) != TaskState::rejected || !r.failure) return RejectReason::none;
  return r.failure->reject_reason;
}

std::exception_ptr TaskHandle::exception() const {
  const auto& r = record();
  if (!is_final(r.state.load(std::memory_order_acquire)) || !r.failure) return nullptr;
  return r.failure->exception;
}

namespace {
std::optional<Clock::time_point> as_time(const std::atomic<std::int64_t>& ns) {
  const auto v = ns.load(std::memory_order_acquire);
  if (v == 0) return std::nullopt;
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(v)));
}
}  // namespace

Clock::time_point TaskHandle::created_at() const {
  return *as_time(record().created_ns);
}
std::optional<Clock::time_point> TaskHandle::queued_at() const {
  return as_time(record().queued_ns);
}
std::optional<Clock::time_point> TaskHandle::started_at() const {
  return as_time(record().started_ns);
}
std::optional<Clock::time_point> TaskHandle::finished_at() const {
  return as_time(record().finished_ns);
}

// --- waiting: a small parking lot, so a task costs one flag rather than a mutex and a condition variable
// -----

namespace detail {
namespace {

struct alignas(64) ParkingSlot {
  std::mutex mutex;
  std::condition_variable cv;
};

ParkingSlot& slot_for(const void* address) {
  static std::array<ParkingSlot, 64> slots;
  const auto h = reinterpret_cast<std::uintptr_t>(address) >> 6;
  return slots[(h ^ (h >> 6)) % slots.size()];
}

}  // namespace

bool wait_final(const TaskRecord& record, const std::chrono::steady_clock::time_point* until_real) {
  if (is_final(record.state.load(std::memory_order_acquire))) return true;
  auto& slot = slot_for(&record);
  // has_waiters is set before the state is read again under the slot's mutex; publish_final stores the state
  // before it reads has_waiters and notifies under the same mutex, so the wakeup cannot be lost.
  const_cast<TaskRecord&>(record).has_waiters.store(true, std::memory_order_seq_cst);
  std::unique_lock lock(slot.mutex);
  while (!is_final(record.state.load(std::memory_order_seq_cst))) {
    if (until_real == nullptr) {
      slot.cv.wait(lock);
    } else if (slot.cv.wait_until(lock, *until_real) == std::cv_status::timeout) {
      return is_final(record.state.load(std::memory_order_seq_cst));
    }
  }
  return true;
}

void publish_final(TaskRecord& record, TaskState final_state) {
  record.state.store(final_state, std::memory_order_seq_cst);
  if (record.has_waiters.load(std::memory_order_seq_cst)) {
    auto& slot = slot_for(&record);
    std::lock_guard lock(slot.mutex);
    slot.cv.notify_all();
  }
}

std::string describe(const std::exception_ptr& error) {
  if (!error) return {};
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "threw an exception not derived from std::exception";
  }
}

}  // namespace detail
}  // namespace taskhive
