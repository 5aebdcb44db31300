#pragma once
// ImpatientClock: the steady clock, but its wait_until returns at once, as the Clock contract allows
// ("spurious returns are allowed"). Whoever waits on it spins; they must not hold their mutex while they do.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "taskhive/clock.hpp"

namespace taskhive::test {

class ImpatientClock final : public Clock {
 public:
  time_point now() const noexcept override { return std::chrono::steady_clock::now(); }
  void wait_until(std::unique_lock<std::mutex>&, std::condition_variable&, time_point) const override {
    waits.fetch_add(1);
  }
  SubscriptionId subscribe(std::function<void()>) override { return 0; }
  void unsubscribe(SubscriptionId) override {}

  /// Calls of wait_until() so far: a test waits for the first to know a waiter is spinning.
  mutable std::atomic<long> waits{0};
};

}  // namespace taskhive::test
