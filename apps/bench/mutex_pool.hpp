#pragma once
// MutexPool: the BASELINE the scheduler benchmarks compare against. A literal C++ port of the original Go
// design's worker pool (goroutines + sync.Mutex + sync.Cond + container/heap), deliberately kept as a
// straightforward port would be, without tuning: a fixed set of std::threads share one std::mutex, one
// std::condition_variable and one std::priority_queue (higher priority first; like Go's heap, no FIFO
// tie-break among equal priorities), an atomic running flag, completed/failed counters, and a graceful Stop
// that lets the workers empty the queue and joins them. It has no retries, deadlines or cancellation.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace taskhive_bench {

class MutexPool {
 public:
  struct Task {
    std::uint64_t id = 0;
    int priority = 0;
    std::function<void()> fn;  // Go's func() error: a throw counts as failed
  };

  explicit MutexPool(unsigned workers) {
    running_.store(true);
    for (unsigned i = 0; i < workers; ++i) threads_.emplace_back([this] { Worker(); });
  }
  ~MutexPool() { Stop(); }
  MutexPool(const MutexPool&) = delete;
  MutexPool& operator=(const MutexPool&) = delete;

  /// Returns false once the pool is stopping (Go returned an error).
  bool Submit(std::function<void()> fn, int priority = 0) {
    if (!running_.load()) return false;
    std::lock_guard lock(mu_);
    tasks_.push(Task{next_id_++, priority, std::move(fn)});
    cond_.notify_one();
    return true;
  }

  /// Stops accepting tasks, lets the workers run what is queued, and waits for them (Go: wg.Wait()).
  void Stop() {
    {
      std::lock_guard lock(mu_);
      running_.store(false);
      cond_.notify_all();
    }
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

  std::uint64_t Completed() const { return completed_.load(); }
  std::uint64_t Failed() const { return failed_.load(); }
  std::size_t Queued() {
    std::lock_guard lock(mu_);
    return tasks_.size();
  }

 private:
  struct ByPriority {
    bool operator()(const Task& a, const Task& b) const { return a.priority < b.priority; }
  };

  void Worker() {
    for (;;) {
      std::unique_lock lock(mu_);
      while (tasks_.empty() && running_.load()) cond_.wait(lock);
      if (tasks_.empty()) return;  // stopped and drained
      Task task = tasks_.top();    // priority_queue::top() is const: copy, as a plain port would
      tasks_.pop();
      lock.unlock();
      try {
        task.fn();
        completed_.fetch_add(1);
      } catch (...) {
        failed_.fetch_add(1);
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cond_;
  std::priority_queue<Task, std::vector<Task>, ByPriority> tasks_;
  std::uint64_t next_id_ = 0;  // guarded by mu_
  std::atomic<bool> running_{false};
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::vector<std::thread> threads_;
};

}  // namespace taskhive_bench
