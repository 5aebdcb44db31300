#pragma once
// SchedulerCore: the machinery behind Scheduler. Kept out of the public header so the API reads as a
// contract.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

#include <oneapi/tbb/concurrent_priority_queue.h>
#include <oneapi/tbb/task.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include "parallelism.hpp"
#include "sharded_counters.hpp"
#include "task_record.hpp"
#include "taskhive/metrics.hpp"
#include "taskhive/scheduler.hpp"
#include "taskhive/timer.hpp"

namespace taskhive::detail {

/// A signed 128-bit integer (a GCC/Clang extension; `__extension__` keeps -Wpedantic quiet about it).
__extension__ using OrderKey = __int128;

/// One queued task in the priority queue. Its place is a 128-bit key, smallest first, that holds the whole
/// order, tie-break included:
///   aging:  (enqueue time - priority x aging_step) x 2^32 + the low 32 bits of the submission sequence
///   strict: -priority x 2^64 + the submission sequence
/// The virtual start time is exact for every priority and step (it needs up to 95 bits); a 64-bit one had to
/// saturate, and tasks whose priority x aging_step passed 2^63 ns then tied whatever their priority. Under
/// aging the sequence only breaks ties between tasks with the same virtual start time to the nanosecond; its
/// low 32 bits wrap once every 4 billion submissions, which could reorder two such tasks at that moment.
///
/// The key is kept as two 64-bit halves compared without a branch (RunsLater), not as one __int128: GCC
/// compares those with a branch, which cost 1 to 4 points of 10 µs-task efficiency (see RunsLater).
struct QueueEntry {
  std::int64_t key_high = 0;  // the key's upper 64 bits, signed
  std::uint64_t key_low = 0;  // its lower 64 bits
  std::shared_ptr<TaskRecord> record;

  static QueueEntry make(OrderKey key, std::shared_ptr<TaskRecord> record) noexcept {
    return {static_cast<std::int64_t>(key >> 64), static_cast<std::uint64_t>(key), std::move(record)};
  }
};

/// concurrent_priority_queue pops the "largest" element: here, the smallest key.
///
/// Written without a branch on purpose. A pop sifts down the heap comparing sibling entries whose order is
/// unpredictable; with the branchy form (`a.high != b.high ? ... : ...`) the processor speculates down wrong
/// paths and pulls heap cache lines the other worker is writing. Measured on the 2-vCPU VM, two threads
/// popping one heap of 4000 entries and spinning 10 µs per entry: 0.967 of ideal with the branchy form,
/// 0.977 with this one (0.88 vs 0.93 when cross-core transfers are slow).
struct RunsLater {
  bool operator()(const QueueEntry& a, const QueueEntry& b) const noexcept {
    return (a.key_high > b.key_high) | ((a.key_high == b.key_high) & (a.key_low > b.key_low));
  }
};

/// What one worker records about the tasks it runs, on cache lines no other worker writes. Code running in
/// arena slot i writes tallies_[i]; oneTBB gives a slot to one thread at a time, and the slot is looked up
/// afresh around each callable (a task suspended with tbb::task::suspend may resume on another thread), so
/// only the code running on that one thread writes the tally and the updates are plain loads and stores
/// (HistogramPart::record_exclusive) rather than lock-prefixed read-modify-writes: five fewer per task.
/// metrics() adds the tallies up.
struct WorkerTally {
  HistogramPart queue_wait, run_time;
  alignas(64) std::atomic<std::uint64_t> succeeded{0};  // written like the histograms: load, then store
};

struct Gauge {
  std::atomic<std::int64_t> value{0};
  std::int64_t add(std::int64_t n) noexcept { return value.fetch_add(n, std::memory_order_seq_cst) + n; }
  std::int64_t get() const noexcept { return value.load(std::memory_order_seq_cst); }
};

class SchedulerCore {
 public:
  explicit SchedulerCore(SchedulerOptions options);
  ~SchedulerCore();

  TaskHandle submit(TaskRecord::Function&& fn, TaskOptions&& options, bool wait,
                    std::optional<Clock::time_point> until);
  void cancel_all();
  void wait_idle();
  void execute(const std::function<void()>& fn) { arena_.execute(fn); }
  void shutdown(ShutdownMode mode);
  MetricsSnapshot metrics() const;

  /// Whether the calling thread is running one of this scheduler's tasks or on_final callbacks.
  bool running_inside_this() const noexcept;

  bool stop_requested(const TaskRecord& record) const noexcept;
  bool deadline_passed(const TaskRecord& record) const noexcept;

  const SchedulerOptions& options() const noexcept { return options_; }

 private:
  friend bool request_stop(const std::shared_ptr<TaskRecord>& record, StopReason reason);

  static std::int64_t to_ns(Clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  /// A reading of the clock as a record's timestamp: nanoseconds, where 0 means "not yet", so a clock that
  /// reads its epoch is taken as 1 ns past it.
  static std::int64_t stamp(Clock::time_point t) noexcept {
    const auto ns = to_ns(t);
    return ns != 0 ? ns : 1;
  }
  std::int64_t now_ns() const noexcept;
  OrderKey order_key(int priority, std::int64_t queued_ns, std::uint64_t sequence) const noexcept;
  /// Throws std::logic_error naming `call` if running_inside_this().
  void refuse_inside(std::string_view call) const;

  /// How reserve_slot() went: a task that waited for room is queued from when it got it, not from its submit.
  enum class Slot { taken, taken_after_waiting, refused };
  Slot reserve_slot(bool wait, std::optional<Clock::time_point> until);
  void release_slot() noexcept;
  /// One in-flight count ends; the last one wakes wait_idle() and shutdown(). After it, `this` may be gone.
  void leave_in_flight() noexcept;
  void purge_tombstones_if_many() noexcept;
  void push(std::shared_ptr<TaskRecord> record, int priority, std::int64_t queued_ns);
  void ensure_drainer() noexcept;
  void drain() noexcept;
  void name_this_worker() noexcept;
  /// The calling worker's tally, or null on a thread that holds no slot of this scheduler's arena.
  WorkerTally* this_worker_tally() noexcept;
  void dispatch(std::shared_ptr<TaskRecord> record) noexcept;
  void run(const std::shared_ptr<TaskRecord>& record) noexcept;
  /// `attempt_ended`: when the failed attempt ended (ns), the start of the backoff.
  void schedule_retry(const std::shared_ptr<TaskRecord>& record, std::exception_ptr error,
                      std::int64_t attempt_ended) noexcept;
  void on_retry_due(const std::shared_ptr<TaskRecord>& record) noexcept;
  void forget_retry(TaskRecord* record) noexcept;
  /// `now` is the clock in nanoseconds if the caller has just read it, else 0; `tally` is the calling
  /// worker's, or null off the workers.
  void finish(TaskRecord& record, TaskState final_state, std::exception_ptr error = nullptr,
              std::string message = {}, std::int64_t now = 0, WorkerTally* tally = nullptr) noexcept;
  TaskHandle reject(std::shared_ptr<TaskRecord> record, RejectReason why, std::string reason);
  // Calls TaskOptions::on_final once the record is final, before the in-flight count lets go of the task.
  void notify_final(TaskRecord& record) noexcept;

  SchedulerOptions options_;
  std::uint64_t id_ = 0;  // unique per scheduler in this process, for thread naming
  std::shared_ptr<Clock> clock_;
  int max_drainers_;

  // Declared in construction order: oneTBB must allow the workers before the arena starts.
  WorkerReservation reservation_;
  tbb::task_arena arena_;
  tbb::task_group drainers_group_;
  // drainers_group_'s context, as the first drainer finds it: what a task's code runs under.
  std::atomic<const tbb::task_group_context*> drainer_context_{nullptr};
  Clock::SubscriptionId clock_subscription_ = 0;

  tbb::concurrent_priority_queue<QueueEntry, RunsLater> queue_;
  // Written by submitters only: kept off the queue's and the drainers' cache lines.
  alignas(64) std::atomic<std::uint64_t> sequence_{0};
  // The two counts every task moves on its way through, on one cache line on purpose: a submitter and a
  // worker each update both, so sharing the line costs one transfer per side instead of two. (Whether the
  // queue has entries, tombstones included, is its own size: see "draining" in scheduler.cpp.)
  struct alignas(64) Flow {
    Gauge in_flight;  // accepted and not final, plus submissions in progress: what wait_idle/shutdown wait on
    Gauge queued;     // waiting to start (cancelled tasks' tombstones not counted): the capacity counter
  } flow_;
  alignas(64) std::atomic<int> drainers_{0};  // drainer jobs alive in the arena
  // Read on every submit and rarely written: a line of their own, away from drainers_, which changes often.
  alignas(64) std::atomic<std::uint64_t> cancel_epoch_{0};
  std::atomic<bool> accepting_{true};
  std::atomic<bool> cancelling_{false};  // shutdown(cancel): failures are final, no retries
  std::atomic<bool> purging_{false};     // one tombstone purge at a time

  ShardedCounters counters_;
  std::unique_ptr<WorkerTally[]> tallies_;  // one per arena slot
  std::size_t tally_count_ = 0;
  HistogramPart shared_queue_wait_, shared_run_time_;  // for attempts run off the slots (none expected)

  // Submitters waiting for queue room.
  std::mutex space_mutex_;
  std::condition_variable space_cv_;
  std::atomic<int> space_waiters_{0};

  // wait_idle() and shutdown() waiting for flow_.in_flight == 0; the last decrement happens under the mutex.
  std::mutex idle_mutex_;
  std::condition_variable idle_cv_;

  // Tasks in retry_wait, so cancel_all() and cancel() can pull them out of the timer.
  struct PendingRetry {
    std::shared_ptr<TaskRecord> record;
    TimerId timer = 0;
  };
  std::mutex retry_mutex_;
  std::unordered_map<TaskRecord*, PendingRetry> retries_;  // guarded by retry_mutex_

  std::mutex shutdown_mutex_;
  bool shut_down_ = false;  // guarded by shutdown_mutex_

  // Last, so it is destroyed first: its thread runs callbacks that use the members above.
  Timer timer_;
};

/// Ends a queued or retry-waiting task (for whoever wins its transition); asks a running one to stop.
/// TaskHandle::cancel, TaskGroup::cancel, deadlines and cancel_all all come here.
bool request_stop(const std::shared_ptr<TaskRecord>& record, StopReason reason);

}  // namespace taskhive::detail
