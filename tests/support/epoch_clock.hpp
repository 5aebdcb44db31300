#pragma once
// EpochClock: a clock that reads its epoch (0 ns) until a test sets it, as a simulation's clock may.
// ManualClock starts elsewhere on purpose, so tests of "a clock reading 0" need this one.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "taskhive/clock.hpp"

namespace taskhive::test {

class EpochClock final : public Clock {
 public:
  std::atomic<std::int64_t> ns{0};  // what now() reads, in nanoseconds since the epoch

  time_point now() const noexcept override { return time_point(std::chrono::nanoseconds(ns.load())); }
  // It announces no jumps, so a waiter polls.
  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                  time_point) const override {
    cv.wait_for(lock, std::chrono::milliseconds(1));
  }
  SubscriptionId subscribe(std::function<void()>) override { return 0; }
  void unsubscribe(SubscriptionId) override {}
};

}  // namespace taskhive::test
