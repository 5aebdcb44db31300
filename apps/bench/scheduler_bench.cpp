// Scheduler benchmarks (Google Benchmark). Families, by name (scripts/bench and reviewers grep for them):
//   BM_empty_*                 throughput of empty tasks: taskhive vs raw tbb::task_group vs the mutex pool
//   BM_10us_*                  10 µs busy tasks; "efficiency" = ideal time / measured wall time (and three
//                              reference points: taskhive with one worker, taskhive with its queue filled
//                              first, a bare shared heap)
//   BM_priority_queue_wait     one high-priority task behind 100000 queued low-priority ones
//   BM_bytes_per_queued_task*  resident memory a queued task costs
//   BM_machine_cross_core_handoff  not a contender: how long a cache line takes to move between two cores
//
// Every contender gets kWorkers threads that run tasks. The submitting (main) thread is extra for taskhive
// and the mutex pool; with tbb::task_group the main thread takes one of the arena's two slots (it runs tasks
// while it waits), which is how a task_arena of 2 is normally used.

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <latch>
#include <memory>
#include <string>
#include <thread>

#include <benchmark/benchmark.h>
#include <oneapi/tbb/concurrent_priority_queue.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/scalable_allocator.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include "mutex_pool.hpp"
#include "taskhive/scheduler.hpp"
#include "taskhive/task.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr unsigned kWorkers = 2;
constexpr int kEmptyTasks = 20'000;
constexpr int kSpinTasks = 4'000;  // 4000 * 10 µs / 2 workers = 20 ms of ideal wall time per iteration
constexpr auto kSpin = std::chrono::microseconds(10);

void spin_for(Clock::duration d) {
  const auto end = Clock::now() + d;
  while (Clock::now() < end) {
  }
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// --- contenders: each runs a batch of n copies of a callable and returns when all have run -----------------

class TaskhiveRunner {
 public:
  explicit TaskhiveRunner(unsigned workers = kWorkers)
      : scheduler_({.workers = workers, .queue_capacity = 4 * kEmptyTasks, .name = "bench"}) {}

  template <typename F>
  void run_batch(int n, const F& f) {
    for (int i = 0; i < n; ++i) scheduler_.try_submit(f);  // the handle is dropped: wait_idle() covers it
    scheduler_.wait_idle();
  }

  /// Called after the timed loop: empty unless every submitted task succeeded.
  std::string check(std::uint64_t expected) {
    const auto m = scheduler_.metrics();
    if (m.rejected != 0 || m.succeeded != expected) {
      return "taskhive: " + std::to_string(m.succeeded) + " succeeded, " + std::to_string(m.rejected) +
             " rejected, " + std::to_string(expected) + " expected";
    }
    return {};
  }

 private:
  taskhive::Scheduler scheduler_;
};

class TbbTaskGroupRunner {
 public:
  TbbTaskGroupRunner() { arena_.initialize(); }

  template <typename F>
  void run_batch(int n, const F& f) {
    arena_.execute([&] {
      tbb::task_group group;
      for (int i = 0; i < n; ++i) group.run(f);
      group.wait();
    });
  }

  std::string check(std::uint64_t) { return {}; }

 private:
  // As taskhive does: oneTBB would otherwise create only hardware_concurrency - 1 workers.
  tbb::global_control parallelism_{tbb::global_control::max_allowed_parallelism, kWorkers + 1};
  tbb::task_arena arena_{static_cast<int>(kWorkers)};
};

class MutexPoolRunner {
 public:
  template <typename F>
  void run_batch(int n, const F& f) {
    // The Go design had no "wait for idle": the caller counts completions (Go: a sync.WaitGroup).
    std::latch done(n);
    for (int i = 0; i < n; ++i) {
      pool_.Submit([&done, f] {
        f();
        done.count_down();
      });
    }
    done.wait();
  }

  std::string check(std::uint64_t expected) {
    pool_.Stop();  // a task counts down the latch before the pool counts it completed: join the workers first
    if (pool_.Completed() != expected || pool_.Failed() != 0) {
      return "mutex pool: " + std::to_string(pool_.Completed()) + " completed, " + std::to_string(expected) +
             " expected";
    }
    return {};
  }

 private:
  taskhive_bench::MutexPool pool_{kWorkers};
};

// The design this scheduler rejected, kept to measure the choice: push into the priority queue, then enqueue
// one arena job per task that pops (whatever is first) and runs it. taskhive instead keeps at most `workers`
// drainer jobs alive, each popping until the queue is empty.
class NaiveEnqueueRunner {
 public:
  NaiveEnqueueRunner() { arena_.initialize(); }

  template <typename F>
  void run_batch(int n, const F& f) {
    std::latch done(n);
    for (int i = 0; i < n; ++i) {
      queue_.push(Entry{0, sequence_++, [&done, f] {
                          f();
                          done.count_down();
                        }});
      arena_.enqueue([this] {
        Entry entry;
        if (queue_.try_pop(entry)) entry.fn();
      });
    }
    done.wait();
  }

  std::string check(std::uint64_t) { return {}; }

 private:
  struct Entry {
    int priority = 0;
    std::uint64_t sequence = 0;
    std::function<void()> fn;
  };
  struct RunsLater {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.priority != b.priority ? a.priority < b.priority : a.sequence > b.sequence;
    }
  };
  tbb::global_control parallelism_{tbb::global_control::max_allowed_parallelism, kWorkers + 1};
  tbb::task_arena arena_{static_cast<int>(kWorkers), 0};
  tbb::concurrent_priority_queue<Entry, RunsLater> queue_;
  std::uint64_t sequence_ = 0;
};

// --- 1. empty-task throughput ------------------------------------------------------------------------------

template <typename Runner>
void run_empty(benchmark::State& state) {
  Runner runner;  // built once per run, outside the timed loop
  for (auto _ : state) runner.run_batch(kEmptyTasks, [] {});
  const auto expected = static_cast<std::uint64_t>(state.iterations()) * kEmptyTasks;
  if (auto error = runner.check(expected); !error.empty()) state.SkipWithError(error.c_str());
  state.SetItemsProcessed(static_cast<std::int64_t>(expected));
}

void BM_empty_taskhive(benchmark::State& state) {
  run_empty<TaskhiveRunner>(state);
}
void BM_empty_tbb_task_group(benchmark::State& state) {
  run_empty<TbbTaskGroupRunner>(state);
}
void BM_empty_mutex_pool(benchmark::State& state) {
  run_empty<MutexPoolRunner>(state);
}
void BM_empty_naive_enqueue_per_task(benchmark::State& state) {
  run_empty<NaiveEnqueueRunner>(state);
}

BENCHMARK(BM_empty_taskhive)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_empty_tbb_task_group)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_empty_mutex_pool)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_empty_naive_enqueue_per_task)->UseRealTime()->Unit(benchmark::kMillisecond);

// --- 2. 10 us tasks ----------------------------------------------------------------------------------------

template <typename Runner>
void run_10us(benchmark::State& state, Runner& runner, unsigned workers = kWorkers) {
  double measured = 0.0;
  for (auto _ : state) {
    const auto start = Clock::now();
    runner.run_batch(kSpinTasks, [] { spin_for(kSpin); });
    measured += seconds_between(start, Clock::now());
  }
  const auto expected = static_cast<std::uint64_t>(state.iterations()) * kSpinTasks;
  if (auto error = runner.check(expected); !error.empty()) state.SkipWithError(error.c_str());
  const double ideal = static_cast<double>(expected) * std::chrono::duration<double>(kSpin).count() / workers;
  state.counters["efficiency"] = measured > 0 ? ideal / measured : 0.0;
  state.SetItemsProcessed(static_cast<std::int64_t>(expected));
}

void BM_10us_taskhive(benchmark::State& state) {
  TaskhiveRunner runner;
  run_10us(state, runner);
}
void BM_10us_tbb_task_group(benchmark::State& state) {
  TbbTaskGroupRunner runner;
  run_10us(state, runner);
}
void BM_10us_mutex_pool(benchmark::State& state) {
  MutexPoolRunner runner;
  run_10us(state, runner);
}
// A reference point: one worker, so the submitting thread has the other core to itself (ideal = N x 10 us).
void BM_10us_taskhive_one_worker(benchmark::State& state) {
  TaskhiveRunner runner(1);
  run_10us(state, runner, 1);
}

BENCHMARK(BM_10us_taskhive)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_10us_tbb_task_group)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_10us_mutex_pool)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_10us_taskhive_one_worker)->UseRealTime()->Unit(benchmark::kMillisecond);

// --- gates: tasks that hold a worker until released --------------------------------------------------------

struct Gates {
  std::atomic<int> entered{0};
  std::atomic<bool> open{false};

  auto task() {
    return [this] {
      entered.fetch_add(1);
      entered.notify_all();
      open.wait(false);
    };
  }
  /// False if fewer than n workers picked up a gate within 10 s (then the gates are opened).
  bool wait_entered(int n) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (entered.load() < n) {
      if (Clock::now() > deadline) {
        release();
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return true;
  }
  void release() {
    open.store(true);
    open.notify_all();
  }
};

// --- 2b. 10 us tasks: what the submitting thread and the shared heap cost --------------------------------
//
// Two reference points for BM_10us_taskhive, timed (manual time) from the moment the workers may start to
// the moment the last task has run, with every task already queued, so the submitting thread's CPU is
// not in them:
//   BM_10us_taskhive_prefilled        the scheduler itself: tasks queued behind gate tasks that hold both
//                                     workers, then the gates open. Includes waking the two gate tasks.
//   BM_10us_shared_heap_floor         no scheduler at all: two arena threads pop 32-byte entries (key,
//                                     sequence, shared_ptr, like taskhive's) from one prefilled
//                                     tbb::concurrent_priority_queue and spin 10 us for each. No design
//                                     built on one shared heap popped by both workers does better than this.

void BM_10us_taskhive_prefilled(benchmark::State& state) {
  taskhive::Scheduler scheduler({.workers = kWorkers, .queue_capacity = 4 * kSpinTasks, .name = "bench"});
  double measured = 0.0;
  for (auto _ : state) {
    Gates gates;
    for (unsigned w = 0; w < kWorkers; ++w) scheduler.submit(gates.task(), {.priority = 1});
    if (!gates.wait_entered(kWorkers)) {
      state.SkipWithError("the workers did not all start a gate task");
      break;
    }
    for (int i = 0; i < kSpinTasks; ++i) scheduler.try_submit([] { spin_for(kSpin); });
    const auto start = Clock::now();
    gates.release();
    scheduler.wait_idle();
    const auto seconds = seconds_between(start, Clock::now());
    state.SetIterationTime(seconds);
    measured += seconds;
  }
  const auto expected = static_cast<std::uint64_t>(state.iterations()) * (kSpinTasks + kWorkers);
  if (const auto m = scheduler.metrics(); m.succeeded != expected || m.rejected != 0) {
    state.SkipWithError("not every task succeeded");
  }
  const double ideal = static_cast<double>(state.iterations()) * kSpinTasks *
                       std::chrono::duration<double>(kSpin).count() / kWorkers;
  state.counters["efficiency"] = measured > 0 ? ideal / measured : 0.0;
}

void BM_10us_shared_heap_floor(benchmark::State& state) {
  struct Entry {
    std::int64_t key = 0;
    std::uint64_t sequence = 0;
    std::shared_ptr<int> payload;
  };
  struct RunsLater {
    bool operator()(const Entry& a, const Entry& b) const {
      return (a.key > b.key) | ((a.key == b.key) & (a.sequence > b.sequence));  // as taskhive's
    }
  };
  tbb::global_control parallelism{tbb::global_control::max_allowed_parallelism, kWorkers + 1};
  tbb::task_arena arena{static_cast<int>(kWorkers), 0};
  arena.initialize();
  tbb::concurrent_priority_queue<Entry, RunsLater> heap;
  double measured = 0.0;
  for (auto _ : state) {
    for (int i = 0; i < kSpinTasks; ++i) {
      heap.push(Entry{i, static_cast<std::uint64_t>(i), std::make_shared<int>(i)});
    }
    std::latch done(kWorkers);
    const auto start = Clock::now();
    for (unsigned w = 0; w < kWorkers; ++w) {
      arena.enqueue([&] {
        Entry entry;
        while (heap.try_pop(entry)) spin_for(kSpin);
        done.count_down();
      });
    }
    done.wait();
    const auto seconds = seconds_between(start, Clock::now());
    state.SetIterationTime(seconds);
    measured += seconds;
  }
  const double ideal = static_cast<double>(state.iterations()) * kSpinTasks *
                       std::chrono::duration<double>(kSpin).count() / kWorkers;
  state.counters["efficiency"] = measured > 0 ? ideal / measured : 0.0;
}

BENCHMARK(BM_10us_taskhive_prefilled)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_10us_shared_heap_floor)->UseManualTime()->Unit(benchmark::kMillisecond);

// --- 3. queue wait of a high-priority task behind a deep low-priority backlog ------------------------------

void BM_priority_queue_wait(benchmark::State& state) {
  constexpr int kLows = 100'000;
  taskhive::Scheduler scheduler(
      {.workers = kWorkers, .queue_capacity = 2 * kLows + 16, .name = "bench-prio"});
  double wait_sum_us = 0.0;
  double after_release_sum_us = 0.0;
  std::int64_t lows_before_max = 0;
  for (auto _ : state) {
    Gates gates;
    for (unsigned w = 0; w < kWorkers; ++w) scheduler.submit(gates.task());
    if (!gates.wait_entered(kWorkers)) {  // every worker is held: everything below queues
      state.SkipWithError("the workers did not all start a gate task");
      break;
    }

    std::atomic<std::int64_t> lows_ran{0};
    for (int i = 0; i < kLows; ++i) {
      scheduler.try_submit([&lows_ran] { lows_ran.fetch_add(1, std::memory_order_relaxed); });
    }
    Clock::time_point started{};
    std::int64_t lows_before = -1;
    const auto submitted = Clock::now();
    auto high = scheduler.submit(
        [&] {
          started = Clock::now();
          lows_before = lows_ran.load(std::memory_order_relaxed);
        },
        {.priority = 10});
    const auto released = Clock::now();
    gates.release();
    high.wait();  // orders the task's writes before the reads below
    scheduler.wait_idle();

    state.SetIterationTime(seconds_between(submitted, started));
    wait_sum_us += seconds_between(submitted, started) * 1e6;
    after_release_sum_us += seconds_between(released, started) * 1e6;
    lows_before_max = std::max(lows_before_max, lows_before);
  }
  const auto m = scheduler.metrics();
  if (m.rejected != 0) state.SkipWithError("a low-priority task was rejected: raise queue_capacity");
  const auto n = static_cast<double>(state.iterations());
  state.counters["high_wait_us"] = wait_sum_us / n;
  state.counters["high_after_release_us"] = after_release_sum_us / n;
  state.counters["lows_before_high"] = static_cast<double>(lows_before_max);  // the worst iteration
}

BENCHMARK(BM_priority_queue_wait)->UseManualTime()->Iterations(5)->Unit(benchmark::kMicrosecond);

// --- 4. memory per queued task
// ------------------------------------------------------------------------------
//
// Resident memory (VmRSS) before and after queueing kQueued tasks behind a gate, over kQueued. taskhive's
// records come from tbbmalloc and the priority queue's array from oneTBB's cache_aligned_allocator, which
// glibc's mallinfo2() cannot see, so both contenders are measured the same way, as growth of the process's
// resident memory; both allocators are asked to return their free memory to the OS first (malloc_trim,
// tbbmalloc's CLEAN_ALL_BUFFERS) so that memory cached from earlier iterations does not hide the growth.
// Allocator slack and container growth are counted, as they cost real memory. The callable is an empty
// lambda: it fits std::function's small buffer and allocates nothing; nothing is subtracted for it. The
// largest of the iterations is reported (caches can only make a figure smaller).

constexpr int kQueued = 100'000;

double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  double size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE));
}

void release_free_memory() {
  malloc_trim(0);
  scalable_allocation_command(TBBMALLOC_CLEAN_ALL_BUFFERS, nullptr);
}

struct HeapBytes {
  double resident = 0.0;
  static HeapBytes now() { return {resident_bytes()}; }
};

void report_bytes(benchmark::State& state, double worst_bytes_per_task) {
  state.counters["bytes_per_task"] = worst_bytes_per_task;
}

void BM_bytes_per_queued_task(benchmark::State& state) {
  double worst = 0.0;
  std::uint64_t rejected = 0;
  for (auto _ : state) {
    taskhive::Scheduler scheduler({.workers = 1, .queue_capacity = 2 * kQueued, .name = "bench-bytes"});
    Gates gates;
    scheduler.submit(gates.task());
    if (!gates.wait_entered(1)) {
      state.SkipWithError("the worker did not start the gate task");
      break;
    }
    release_free_memory();
    const auto before = HeapBytes::now();
    for (int i = 0; i < kQueued; ++i) scheduler.try_submit([] {});  // handles dropped: the queue holds them
    const auto after = HeapBytes::now();
    worst = std::max(worst, (after.resident - before.resident) / kQueued);
    gates.release();
    scheduler.wait_idle();
    rejected += scheduler.metrics().rejected;
  }
  if (rejected != 0) state.SkipWithError("a task was rejected: raise queue_capacity");
  report_bytes(state, worst);
}

// The same measurement for the baseline: a queued task is a MutexPool::Task in the priority_queue's vector.
void BM_bytes_per_queued_task_mutex_pool(benchmark::State& state) {
  double worst = 0.0;
  for (auto _ : state) {
    taskhive_bench::MutexPool pool(1);
    Gates gates;
    pool.Submit(gates.task());
    if (!gates.wait_entered(1)) {
      state.SkipWithError("the worker did not start the gate task");
      break;
    }
    release_free_memory();
    const auto before = HeapBytes::now();
    for (int i = 0; i < kQueued; ++i) pool.Submit([] {});
    const auto after = HeapBytes::now();
    worst = std::max(worst, (after.resident - before.resident) / kQueued);
    gates.release();
    pool.Stop();  // runs what is queued, then joins
  }
  report_bytes(state, worst);
}

BENCHMARK(BM_bytes_per_queued_task)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_bytes_per_queued_task_mutex_pool)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

// --- 5. the machine ---------------------------------------------------------------------------------------
//
// Not a contender: a reading of the machine, printed beside the figures of the same run. Two threads hand one
// cache line back and forth; handoff_ns is the time of one move. On the 2-vCPU VM this project is measured on
// it reads ~45 ns most of the time and ~200 ns in spells lasting minutes (the host places the vCPUs farther
// apart), when every figure that moves cache lines between the workers drops (shared-heap pops, empty tasks)
// and the mutex pool, which mostly runs on one core at a time, gets faster. Read a run's figures against it.
void BM_machine_cross_core_handoff(benchmark::State& state) {
  constexpr long kHandoffs = 200'000;
  double seconds = 0.0;
  for (auto _ : state) {
    alignas(64) std::atomic<long> turn{0};
    const auto start = Clock::now();
    std::thread other([&] {
      for (long i = 1; i < kHandoffs; i += 2) {
        while (turn.load(std::memory_order_acquire) != i) {
        }
        turn.store(i + 1, std::memory_order_release);
      }
    });
    for (long i = 0; i < kHandoffs; i += 2) {
      while (turn.load(std::memory_order_acquire) != i) {
      }
      turn.store(i + 1, std::memory_order_release);
    }
    other.join();
    seconds += seconds_between(start, Clock::now());
  }
  state.counters["handoff_ns"] = seconds * 1e9 / (static_cast<double>(state.iterations()) * kHandoffs);
}

BENCHMARK(BM_machine_cross_core_handoff)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
