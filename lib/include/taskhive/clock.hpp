#pragma once
// Clocks: the one source of "now" for everything time-dependent in taskhive, so tests can drive time by hand.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

namespace taskhive {

/// A monotonic clock that time-dependent components (timers, deadlines, aging) read and wait on.
///
/// @code
///   auto clock = taskhive::Clock::steady();          // production: std::chrono::steady_clock
///   auto manual = std::make_shared<taskhive::ManualClock>();
///   manual->advance(std::chrono::seconds(5));         // tests: time moves only when told
/// @endcode
///
/// Implementations are thread-safe. A component that sleeps until a clock time calls wait_until(), and
/// subscribes to learn when a manual clock jumps (a steady clock never calls subscribers).
class Clock {
 public:
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;
  using SubscriptionId = std::uint64_t;

  virtual ~Clock() = default;

  virtual time_point now() const noexcept = 0;

  /// Blocks on `cv` (whose mutex `lock` holds) until notified or until `deadline` on this clock may have
  /// come. Spurious returns are allowed: callers re-check their condition, as with any condition variable.
  virtual void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                          time_point deadline) const = 0;

  /// Calls `on_jump` after every change of time that wait_until() could otherwise miss. The callback must not
  /// call back into the clock. Returns an id for unsubscribe().
  virtual SubscriptionId subscribe(std::function<void()> on_jump) = 0;
  /// After this returns, the callback is not running and will not run again.
  virtual void unsubscribe(SubscriptionId id) = 0;

  /// The process-wide steady clock.
  static std::shared_ptr<Clock> steady();
};

/// std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  time_point now() const noexcept override { return std::chrono::steady_clock::now(); }
  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                  time_point deadline) const override;
  SubscriptionId subscribe(std::function<void()>) override { return 0; }
  void unsubscribe(SubscriptionId) override {}
};

/// A clock that moves only when advance() or set() is called: deterministic tests of timeouts, retries and
/// aging without sleeping.
///
/// @code
///   auto clock = std::make_shared<taskhive::ManualClock>();
///   taskhive::Scheduler scheduler({.workers = 1, .clock = clock});
///   auto task = scheduler.submit(work, {.timeout = std::chrono::seconds(1)});
///   clock->advance(std::chrono::seconds(2));          // the deadline fires now, not in a real second
/// @endcode
class ManualClock final : public Clock {
 public:
  /// Starts at an arbitrary, non-zero point so that "time_point{}" is never mistaken for now.
  ManualClock();

  time_point now() const noexcept override {
    return time_point(duration(now_.load(std::memory_order_acquire)));
  }
  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                  time_point deadline) const override;
  SubscriptionId subscribe(std::function<void()> on_jump) override;
  void unsubscribe(SubscriptionId id) override;

  /// Moves time forward by `d` (negative values are ignored: the clock is monotonic) and wakes subscribers.
  void advance(duration d);
  /// Moves time to `t` if it is later than now.
  void set(time_point t);

 private:
  void notify_subscribers();

  std::atomic<duration::rep> now_;
  std::mutex subscribers_mutex_;
  std::map<SubscriptionId, std::function<void()>> subscribers_;
  SubscriptionId next_id_ = 1;
};

}  // namespace taskhive
