#pragma once
// Test helpers: a gate that blocks workers until opened, and a bounded wait on a condition.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace taskhive::test {

/// Blocks callers of wait() until open() is called; counts how many are waiting, so a test can be sure
/// every worker is inside a gate task before it goes on.
class Gate {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    --waiting_;
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  /// Waits (up to a generous real-time bound) until `n` callers are blocked in wait().
  bool wait_for_waiters(int n, std::chrono::seconds bound = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, bound, [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int waiting_ = 0;
  bool open_ = false;
};

/// A thread-safe flag-and-counter that tests wait on instead of sleeping.
class Signal {
 public:
  void notify() {
    std::lock_guard lock(mutex_);
    ++count_;
    cv_.notify_all();
  }
  bool wait_for_count(int n, std::chrono::seconds bound = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, bound, [&] { return count_ >= n; });
  }
  int count() {
    std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int count_ = 0;
};

}  // namespace taskhive::test
