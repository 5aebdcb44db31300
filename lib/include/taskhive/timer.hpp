#pragma once
// Timer: one thread that runs callbacks at clock times. Retries and deadlines wait here, never on a worker.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "taskhive/clock.hpp"

namespace taskhive {

namespace detail {
struct TimerState;
}

/// Identifies a scheduled callback; 0 is never a valid id.
using TimerId = std::uint64_t;

/// A delay queue served by one thread: schedule a callback at a clock time, cancel it before it runs.
///
/// @code
///   taskhive::Timer timer;                            // steady clock, thread named "taskhive-timer"
///   auto id = timer.schedule_after(std::chrono::milliseconds(50), [] { retry(); });
///   timer.cancel(id);                                 // true: it had not run yet
/// @endcode
///
/// Thread-safe. Callbacks run on the timer's thread, one at a time, in due order (ties in scheduling order);
/// they must be short and must not block. An exception from a callback is logged and swallowed. Destroying
/// the timer discards callbacks that have not run; a callback may destroy its own timer (the thread then
/// finishes that callback and exits on its own).
class Timer {
 public:
  /// A null clock means Clock::steady().
  explicit Timer(std::shared_ptr<Clock> clock = Clock::steady(), std::string thread_name = "taskhive-timer");
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  TimerId schedule_at(Clock::time_point due, std::function<void()> callback);
  TimerId schedule_after(Clock::duration delay, std::function<void()> callback);

  /// Removes a callback that has not started. Returns false if it already ran, is running, or never existed.
  bool cancel(TimerId id);

  /// Callbacks scheduled and not yet run.
  std::size_t pending() const;

  const std::shared_ptr<Clock>& clock() const noexcept;

 private:
  // Shared with the thread, which outlives the Timer when a callback destroys it.
  std::shared_ptr<detail::TimerState> state_;
};

}  // namespace taskhive
