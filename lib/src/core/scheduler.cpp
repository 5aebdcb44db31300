#include "taskhive/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <oneapi/tbb/scalable_allocator.h>
#include <spdlog/async_logger.h>

#include "group_state.hpp"
#include "scheduler_core.hpp"
#include "taskhive/logging.hpp"
#include "test_seams.hpp"
#include "thread_name.hpp"
#include "time_math.hpp"

namespace taskhive {
namespace detail {

std::atomic<void (*)()> seams::drainer_leaving{nullptr};
std::atomic<void (*)()> seams::in_flight_drained{nullptr};

namespace {

// A drainer hands its thread back to the arena after this many tasks, so other work in the arena (flow
// graphs share it) gets a turn; it re-enqueues itself if the queue is not empty.
constexpr int kDrainerBatch = 256;

// Tombstones (entries of cancelled tasks) tolerated in the queue before it is rebuilt without them.
constexpr std::int64_t kPurgeThreshold = 4096;

// The scheduler that this thread is ending a task of (request_stop(): the callable's destructor) or calling
// an on_final callback of, if any; see SchedulerCore::running_inside_this(). Set only on a thread that runs
// no oneTBB task (a caller of cancel(), the timer thread), where nothing can suspend and leave it behind:
// inside a task, a callback that suspends (tbb::task::suspend) would leave the marker on a thread that goes
// on to other work, and false refusals (or a terminated process) are worse than the hang they prevent. On
// the scheduler's own workers the drainers' context covers these calls instead.
thread_local const SchedulerCore* running_inside = nullptr;

class InsideScope {
 public:
  explicit InsideScope(const SchedulerCore* core) noexcept
      : saved_(running_inside), active_(tbb::task::current_context() == nullptr) {
    if (active_) running_inside = core;
  }
  ~InsideScope() {
    if (active_) running_inside = saved_;
  }
  InsideScope(const InsideScope&) = delete;
  InsideScope& operator=(const InsideScope&) = delete;

 private:
  const SchedulerCore* saved_;
  bool active_;
};

double uniform01() {
  thread_local std::mt19937_64 engine{std::random_device{}() ^
                                      std::hash<std::thread::id>{}(std::this_thread::get_id())};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

unsigned resolve_workers(unsigned requested) {
  if (requested > 0) return requested;
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

// --- construction and shutdown ---------------------------------------------------------------------------

namespace {
SchedulerOptions validated(SchedulerOptions options) {
  // Each worker slot costs a thread when busy and a 16 KiB tally always; beyond this a count is a mistake
  // (and past INT_MAX it would wrap negative in tbb::task_arena's int).
  if (options.workers > SchedulerOptions::max_workers) {
    throw std::invalid_argument(fmt::format("SchedulerOptions::workers must be at most {} (got {})",
                                            SchedulerOptions::max_workers, options.workers));
  }
  if (options.queue_capacity == 0)
    throw std::invalid_argument("SchedulerOptions::queue_capacity must be at least 1");
  if (options.aging_step <= std::chrono::nanoseconds::zero()) {
    throw std::invalid_argument(
        "SchedulerOptions::aging_step must be positive (with no step, waiting would earn nothing and the "
        "queue would ignore priorities; QueueOrder::strict is priority without aging)");
  }
  // The queue's counts are signed 64-bit: a larger capacity (SIZE_MAX for "unbounded") means the same.
  options.queue_capacity =
      std::min<std::size_t>(options.queue_capacity, std::numeric_limits<std::int64_t>::max());
  return options;
}
}  // namespace

SchedulerCore::SchedulerCore(SchedulerOptions options)
    : options_(validated(std::move(options))),
      clock_(options_.clock ? options_.clock : Clock::steady()),
      max_drainers_(static_cast<int>(resolve_workers(options_.workers))),
      reservation_(static_cast<std::size_t>(max_drainers_)),
      // No slots reserved for application threads: all `workers` slots go to TBB workers, which is what makes
      // the arena's concurrency real (with the global_control below).
      arena_(max_drainers_, 0),
      timer_(clock_, options_.name + "-timer") {
  static std::atomic<std::uint64_t> next_id{1};
  id_ = next_id.fetch_add(1, std::memory_order_relaxed);
  options_.workers = static_cast<unsigned>(max_drainers_);
  options_.clock = clock_;
  if (WorkerReservation::allowed_threads() < static_cast<std::size_t>(max_drainers_) + 1) {
    logger()->warn(
        "scheduler '{}': a tbb::global_control of the application limits oneTBB to {} threads, so "
        "fewer than the {} workers asked for can run at once",
        options_.name, WorkerReservation::allowed_threads(), max_drainers_);
  }
  arena_.initialize();
  // oneTBB gives an arena at least two slots, whatever its concurrency; one tally per slot a drainer can
  // hold.
  tally_count_ = static_cast<std::size_t>(std::max(max_drainers_, 2));
  tallies_ = std::make_unique<WorkerTally[]>(tally_count_);
  clock_subscription_ = clock_->subscribe([this] {
    // Submitters waiting for room with a deadline on a manual clock re-check it when time jumps.
    std::lock_guard lock(space_mutex_);
    space_cv_.notify_all();
  });
}

SchedulerCore::~SchedulerCore() {
  shutdown(ShutdownMode::drain);
  clock_->unsubscribe(clock_subscription_);
}

bool SchedulerCore::running_inside_this() const noexcept {
  // No task in flight: nothing to wait for, so nothing to refuse, whatever the markers say.
  if (flow_.in_flight.get() == 0) return false;
  const auto* context = tbb::task::current_context();
  if (running_inside == this && context == nullptr) return true;
  // A task's callable runs in a drainer, a task of drainers_group_: the context follows the task's stack,
  // also across tbb::task::suspend, where a thread-local marker would be left behind. (A call from a nested
  // parallel algorithm inside the task has that algorithm's context and is not recognised.)
  const auto* drainer = drainer_context_.load(std::memory_order_acquire);
  return drainer != nullptr && context == drainer;
}

void SchedulerCore::refuse_inside(std::string_view call) const {
  if (!running_inside_this()) return;
  throw std::logic_error(fmt::format(
      "scheduler '{}': {} was called from one of its own tasks or on_final callbacks, and would wait for "
      "that very call to end",
      options_.name, call));
}

void SchedulerCore::shutdown(ShutdownMode mode) {
  refuse_inside("shutdown()");
  // Not under shutdown_mutex_: a shutdown(cancel) must be able to cut short a drain already in progress.
  if (mode == ShutdownMode::cancel) cancelling_.store(true, std::memory_order_seq_cst);
  accepting_.store(false, std::memory_order_seq_cst);
  {
    std::lock_guard lock(space_mutex_);  // wake submitters blocked on a full queue: they are rejected now
    space_cv_.notify_all();
  }
  if (mode == ShutdownMode::cancel) cancel_all();
  wait_idle();
  // Every task is final; drainers may still be on their way out of the arena.
  std::lock_guard once(shutdown_mutex_);
  arena_.execute([this] { drainers_group_.wait(); });
}

void SchedulerCore::wait_idle() {
  refuse_inside("wait_idle()");
  // Always under the mutex, even when the count is already 0: the last leave_in_flight() brings it to 0 and
  // notifies while holding the mutex, so holding it here means that call is done with this object, and a
  // caller that destroys the scheduler next does not pull it from under it.
  std::unique_lock lock(idle_mutex_);
  idle_cv_.wait(lock, [this] { return flow_.in_flight.get() == 0; });
}

// --- submission ------------------------------------------------------------------------------------------

std::int64_t SchedulerCore::now_ns() const noexcept {
  return stamp(clock_->now());
}

OrderKey SchedulerCore::order_key(int priority, std::int64_t queued_ns,
                                  std::uint64_t sequence) const noexcept {
  // See QueueEntry. |queued_ns - priority x step| < 2^63 + 2^31 x 2^63 < 2^95, so the aging key is below
  // 2^127.
  constexpr OrderKey two_to_32 = OrderKey{1} << 32;
  constexpr OrderKey two_to_64 = OrderKey{1} << 64;
  if (options_.order == QueueOrder::strict) return -OrderKey{priority} * two_to_64 + OrderKey{sequence};
  const OrderKey virtual_start =
      OrderKey{queued_ns} - OrderKey{priority} * OrderKey{options_.aging_step.count()};
  return virtual_start * two_to_32 + OrderKey{sequence & 0xFFFF'FFFFu};
}

TaskHandle SchedulerCore::submit(TaskRecord::Function&& fn, TaskOptions&& options, bool wait,
                                 std::optional<Clock::time_point> until) {
  // tbbmalloc: records are freed on worker threads, which glibc's malloc handles poorly.
  auto record = std::allocate_shared<TaskRecord>(tbb::scalable_allocator<TaskRecord>());
  record->fn = std::move(fn);
  if (!options.name.empty())
    record->given_name = std::make_unique<const std::string>(std::move(options.name));
  record->core = this;
  record->load = options.load;
  const auto now = clock_->now();
  const auto now_count = stamp(now);
  record->created_ns.store(now_count, std::memory_order_relaxed);
  auto deadline = Clock::time_point::max();
  if (options.timeout) deadline = saturating_add(now, *options.timeout);
  if (options.deadline) deadline = std::min(deadline, *options.deadline);
  if (options.retry.max_retries > 0 || options.group || options.on_final ||
      deadline != Clock::time_point::max()) {
    record->extras = std::make_unique<TaskExtras>();
    record->extras->retry = options.retry;
    record->extras->on_final = std::move(options.on_final);
    record->extras->self = record;
    record->extras->deadline = deadline;
    record->extras->priority = options.priority;
  }
  // Read before the accepting_ check, so a cancel_all() from shutdown(cancel) that follows covers this task.
  record->cancel_epoch = static_cast<std::uint32_t>(cancel_epoch_.load(std::memory_order_seq_cst));

  // Count the task in flight before checking accepting_: shutdown() clears accepting_ and then waits for
  // flow_.in_flight to reach 0, so either it sees this task or this task sees it shutting down.
  flow_.in_flight.add(1);
  if (!accepting_.load(std::memory_order_seq_cst)) {
    return reject(std::move(record), RejectReason::shutting_down,
                  fmt::format("scheduler '{}' is shutting down and accepts no new tasks", options_.name));
  }
  const auto& admission = options_.admission;
  if (admission) {
    std::optional<std::string> refusal;
    try {
      refusal = admission->try_admit(record->load);
    } catch (...) {
      refusal = "the admission policy failed: " + describe(std::current_exception());
    }
    if (refusal) return reject(std::move(record), RejectReason::overloaded, std::move(*refusal));
    record->admitted = true;
  }
  const auto slot = reserve_slot(wait, until);
  if (slot == Slot::refused) {
    if (record->admitted) {
      admission->release(record->load, TaskState::rejected, std::chrono::nanoseconds::zero());
      record->admitted = false;
    }
    if (!accepting_.load(std::memory_order_seq_cst)) {
      return reject(std::move(record), RejectReason::shutting_down,
                    fmt::format("scheduler '{}' is shutting down and accepts no new tasks", options_.name));
    }
    return reject(std::move(record), RejectReason::queue_full,
                  fmt::format("queue full: {} of {} slots in use; retry later, or raise queue_capacity",
                              flow_.queued.get(), options_.queue_capacity));
  }
  counters_.add(Event::submitted);
  TaskHandle handle(record);
  TaskRecord* const published = record.get();
  // A task in a group or with a deadline becomes visible to the group and the timer before it is pushed, and
  // they can end it first; an extra in-flight count then keeps shutdown() from completing under the push.
  // (Without either, nothing can reach the task before the push: its handle is not returned yet.)
  const bool exposed = options.group.has_value() || deadline != Clock::time_point::max();
  if (exposed) flow_.in_flight.add(1);
  try {
    if (options.group) {
      record->extras->group = options.group->state();
      if (!record->extras->group->join(record)) {
        record->extras->group.reset();
        release_slot();
        finish(*record, TaskState::cancelled, nullptr,
               "its task group was cancelled before it was submitted");
        leave_in_flight();
        return handle;
      }
    }
    if (deadline != Clock::time_point::max()) {
      std::weak_ptr<TaskRecord> weak = record;
      record->extras->deadline_timer.store(timer_.schedule_at(deadline, [weak] {
        if (auto r = weak.lock()) detail::request_stop(r, StopReason::timed_out);
      }));
    }
    // A task that waited for room starts queueing (and, under aging, earning priority) only once it has it.
    push(std::move(record), options.priority, slot == Slot::taken ? now_count : now_ns());
  } catch (...) {
    // Out of memory while publishing it: end the task through its state machine, so accounting stays whole.
    if (published->transition(TaskState::queued, kFinishing)) {
      release_slot();
      finish(*published, TaskState::failed, std::current_exception(),
             "could not be queued: " + describe(std::current_exception()));
    }
  }
  if (exposed) leave_in_flight();
  return handle;
}

TaskHandle SchedulerCore::reject(std::shared_ptr<TaskRecord> record, RejectReason why, std::string reason) {
  record->failure = std::make_unique<Failure>(Failure{std::move(reason), nullptr, why});
  record->fn = nullptr;
  record->finished_ns.store(now_ns(), std::memory_order_relaxed);
  counters_.add(Event::rejected);
  publish_final(*record, TaskState::rejected);
  notify_final(*record);
  leave_in_flight();
  return TaskHandle(std::move(record));
}

void SchedulerCore::notify_final(TaskRecord& record) noexcept {
  if (!record.extras || !record.extras->on_final) return;
  // Moved out first: the callback often captures what owns this record's handle, and dropping it right after
  // the call breaks that cycle.
  InsideScope inside(this);  // before the callback, which may own the last reference to the scheduler
  const auto callback = std::move(record.extras->on_final);
  record.extras->on_final = nullptr;
  try {
    // Whoever finishes a task holds a reference to its record, so the weak one still locks.
    callback(TaskHandle(record.extras->self.lock()));
  } catch (...) {
    logger()->error("{}: its on_final callback threw: {}", record.label(),
                    describe(std::current_exception()));
  }
}

void SchedulerCore::leave_in_flight() noexcept {
  // Not the last one: no one can be waiting for this decrement, so no lock.
  auto count = flow_.in_flight.value.load(std::memory_order_seq_cst);
  while (count > 1) {
    if (flow_.in_flight.value.compare_exchange_weak(count, count - 1, std::memory_order_seq_cst)) return;
  }
  // Perhaps the last: decrement and notify under idle_mutex_, which wait_idle() takes before it returns. If
  // the count reached 0 outside the lock, a thread that saw the task final could return from wait_idle(),
  // destroy the scheduler and free the mutex and condition variable this thread was about to use.
  std::lock_guard lock(idle_mutex_);
  if (flow_.in_flight.add(-1) == 0) {
    if (auto* seam = seams::in_flight_drained.load(std::memory_order_relaxed)) seam();
    idle_cv_.notify_all();
  }
}

SchedulerCore::Slot SchedulerCore::reserve_slot(bool wait, std::optional<Clock::time_point> until) {
  const auto capacity = static_cast<std::int64_t>(options_.queue_capacity);
  auto try_take = [&] {
    auto used = flow_.queued.value.load(std::memory_order_seq_cst);  // pairs with release_slot()'s decrement
    while (used < capacity) {
      if (flow_.queued.value.compare_exchange_weak(used, used + 1, std::memory_order_seq_cst)) return true;
    }
    return false;
  };
  if (try_take()) return Slot::taken;
  if (!wait) return Slot::refused;
  std::unique_lock lock(space_mutex_);
  space_waiters_.fetch_add(1, std::memory_order_seq_cst);
  bool taken = false;
  while (!(taken = try_take()) && accepting_.load(std::memory_order_seq_cst)) {
    if (!until) {
      space_cv_.wait(lock);
    } else {
      if (clock_->now() >= *until) break;
      clock_->wait_until(lock, space_cv_, *until);
      // As in the timer: a clock whose wait_until returns at once must not keep other submitters (each with
      // its own deadline) and release_slot() away from this mutex.
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
    }
  }
  space_waiters_.fetch_sub(1, std::memory_order_seq_cst);
  lock.unlock();  // release_slot() takes it
  if (taken && !accepting_.load(std::memory_order_seq_cst)) {
    release_slot();  // a slot won just as shutdown began: pass it on, another waiter may be refused it too
    return Slot::refused;
  }
  return taken ? Slot::taken_after_waiting : Slot::refused;
}

void SchedulerCore::release_slot() noexcept {
  flow_.queued.add(-1);
  if (space_waiters_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard lock(space_mutex_);
    space_cv_.notify_one();
  }
}

void SchedulerCore::push(std::shared_ptr<TaskRecord> record, int priority, std::int64_t queued) {
  record->queued_ns.store(queued, std::memory_order_relaxed);
  auto entry = QueueEntry::make(
      order_key(priority, queued, sequence_.fetch_add(1, std::memory_order_relaxed)), std::move(record));
  queue_.push(std::move(entry));
  ensure_drainer();
}

// --- draining --------------------------------------------------------------------------------------------
//
// At most `workers` drainer jobs live in the arena; each pops and runs tasks until the queue is empty. A push
// puts its entry in queue_ and then, after a sequentially consistent fence, looks at drainers_; a drainer
// that leaves decrements drainers_ and then, after a fence, looks at the queue's size. The push's size update
// happens before the pusher's fence (the heap's handler publishes it before the push returns), so the fences
// order the two sides and at least one sees the other: either the push starts a drainer, or the leaving
// drainer comes back for the task (unless a push has taken its slot meanwhile, and that push's new drainer
// will). Every leaving drainer looks, not only the last one to leave: the drainers still alive may all be
// inside long tasks, and a push that counted on them would leave its task waiting with a worker free
// (scheduler_test.cpp forces that interleaving through seams::drainer_leaving). This costs one arena enqueue
// per burst, not per task.
//
// The queue's own size, not a counter of ours: a count of entries that submitters incremented and drainers
// decremented moved its cache line between the cores twice per task: 12% of empty-task throughput, and half
// of the drain loop's own samples in a profile went to its decrement. The queued count cannot serve: it
// counts a task before its push.

void SchedulerCore::ensure_drainer() noexcept {
  // Every caller has just pushed: the push, then drainers_ (see above).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  auto alive = drainers_.load(std::memory_order_seq_cst);
  while (alive < max_drainers_) {
    if (drainers_.compare_exchange_weak(alive, alive + 1, std::memory_order_seq_cst)) {
      arena_.enqueue(drainers_group_.defer([this] { drain(); }));
      return;
    }
  }
}

void SchedulerCore::name_this_worker() noexcept {
  // Named here rather than by a tbb::task_scheduler_observer: oneTBB 2021.8 can leak an observer's proxy when
  // observe(false) races a worker entering the arena (LeakSanitizer reports it now and then). A thread is
  // renamed only when it first drains for a different scheduler; ids, not addresses, tell schedulers apart.
  thread_local std::uint64_t named_for = 0;
  if (named_for == id_) return;
  named_for = id_;
  try {
    set_current_thread_name(
        fmt::format("{}-w{}", options_.name, tbb::this_task_arena::current_thread_index()));
  } catch (...) {  // formatting ran out of memory: the name is cosmetic
  }
}

WorkerTally* SchedulerCore::this_worker_tally() noexcept {
  const int slot = tbb::this_task_arena::current_thread_index();
  return slot >= 0 && static_cast<std::size_t>(slot) < tally_count_ ? &tallies_[slot] : nullptr;
}

void SchedulerCore::drain() noexcept {
  name_this_worker();
  if (drainer_context_.load(std::memory_order_relaxed) == nullptr)
    drainer_context_.store(tbb::task::current_context(), std::memory_order_release);
  int budget = kDrainerBatch;
  for (;;) {
    QueueEntry entry;
    while (budget > 0 && queue_.try_pop(entry)) {
      dispatch(std::move(entry.record));
      --budget;
    }
    if (budget == 0) {
      // Yield the thread to other arena work, keeping this drainer's slot for the job enqueued here.
      arena_.enqueue(drainers_group_.defer([this] { drain(); }));
      return;
    }
    if (auto* seam = seams::drainer_leaving.load(std::memory_order_relaxed)) seam();
    // Every leaving drainer re-checks, not only the last: a push that saw all slots taken counted on one of
    // their holders, and the others may be inside long tasks, with a worker free and the task waiting.
    drainers_.fetch_sub(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // drainers_, then the queue (see above)
    if (queue_.empty()) return;
    auto alive = drainers_.load(std::memory_order_seq_cst);
    do {
      if (alive >= max_drainers_) return;  // another drainer will take it
    } while (!drainers_.compare_exchange_weak(alive, alive + 1, std::memory_order_seq_cst));
  }
}

void SchedulerCore::dispatch(std::shared_ptr<TaskRecord> record) noexcept {
  if (record->state.load(std::memory_order_acquire) != TaskState::queued) return;  // cancelled while queued
  if (deadline_passed(*record)) {
    if (record->transition(TaskState::queued, kFinishing)) {
      release_slot();
      finish(*record, TaskState::timed_out, nullptr, "its deadline passed while it was queued");
    }
    return;
  }
  if (stop_requested(*record)) {
    if (record->transition(TaskState::queued, kFinishing)) {
      release_slot();
      finish(*record, TaskState::cancelled, nullptr, "cancelled before it started");
    }
    return;
  }
  if (!record->transition(TaskState::queued, TaskState::running)) return;
  release_slot();
  run(record);
}

void SchedulerCore::run(const std::shared_ptr<TaskRecord>& record) noexcept {
  const auto started = now_ns();
  // Looked up before the callable and again after it: a task that suspends (tbb::task::suspend) may resume
  // on another thread, while the thread it left runs other drainers on its old slot's tally.
  WorkerTally* tally = this_worker_tally();
  record->started_ns.store(started, std::memory_order_relaxed);
  const auto waited = static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, started - record->queued_ns.load(std::memory_order_relaxed)));
  if (tally) {
    tally->queue_wait.record_exclusive(waited);
  } else {
    shared_queue_wait_.record_shared(waited);
  }
  // Only the running worker writes attempts: a plain store, not a read-modify-write.
  record->attempts.store(record->attempts.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  std::exception_ptr error;
  try {
    TaskContext context(*record);
    record->fn(context);
  } catch (...) {
    error = std::current_exception();
  }
  const auto ended = now_ns();
  const auto ran = static_cast<std::uint64_t>(std::max<std::int64_t>(0, ended - started));
  tally = this_worker_tally();
  if (tally) {
    tally->run_time.record_exclusive(ran);
  } else {
    shared_run_time_.record_shared(ran);
  }

  if (!error) {
    finish(*record, TaskState::succeeded, nullptr, {}, ended, tally);
  } else if (deadline_passed(*record)) {
    finish(*record, TaskState::timed_out, error);
  } else if (stop_requested(*record)) {
    finish(*record, TaskState::cancelled, error);
  } else if (record->attempts.load(std::memory_order_relaxed) <= record->max_retries() &&
             !cancelling_.load(std::memory_order_acquire)) {
    schedule_retry(record, error, ended);
  } else {
    finish(*record, TaskState::failed, error);
  }
}

// --- retries ---------------------------------------------------------------------------------------------

void SchedulerCore::schedule_retry(const std::shared_ptr<TaskRecord>& record, std::exception_ptr error,
                                   std::int64_t attempt_ended) noexcept {
  const auto attempt = record->attempts.load(std::memory_order_relaxed);
  record->extras->backoff_since = attempt_ended;                             // retries imply extras
  const auto delay = record->extras->retry.delay(attempt - 1, uniform01());  // retries imply extras
  logger()->debug("{} failed attempt {} ({}); retrying in {} ms", record->label(), attempt, describe(error),
                  std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  counters_.add(Event::retried);
  counters_.add(Event::retry_entered);
  // Kept so that a task cancelled or timed out while waiting still reports what made it retry.
  record->failure = std::make_unique<Failure>(Failure{describe(error), error});
  {
    // The timer entry and the retries_ entry exist before anyone can see retry_wait, so whoever ends the task
    // from retry_wait (cancel, deadline, cancel_all) finds them to remove. The lock also holds back the timer
    // callback until the state is published.
    std::lock_guard lock(retry_mutex_);
    const auto id = timer_.schedule_after(delay, [this, record] { on_retry_due(record); });
    retries_[record.get()] = PendingRetry{record, id};
    record->state.store(TaskState::retry_wait, std::memory_order_seq_cst);
  }
  // A cancel() that arrived while the task was still running only set its stop flag (and re-reads the state
  // after, so one of the two sides sees the other: both are sequentially consistent); cancel_all() bumped the
  // epoch before it looked at retries_. Either way, end the task now instead of after its backoff.
  if (stop_requested(*record)) {
    detail::request_stop(record, deadline_passed(*record) ? StopReason::timed_out : StopReason::cancelled);
  }
}

void SchedulerCore::on_retry_due(const std::shared_ptr<TaskRecord>& record) noexcept {
  forget_retry(record.get());
  // Claim the task before counting anything: if a cancel, deadline or cancel_all() ended it first, it is
  // final and shutdown() may have returned already; the gauges must not move after that.
  if (!record->transition(TaskState::retry_wait, kRequeueing)) return;
  // Once queued, a cancel may end the task before it is pushed: hold shutdown back across the push, and count
  // the slot first so the queued gauge never dips below zero. Returning tasks are never refused for capacity.
  flow_.in_flight.add(1);
  flow_.queued.add(1);
  counters_.add(Event::retry_left);
  record->extras->backoff_since = 0;
  record->state.store(TaskState::queued, std::memory_order_seq_cst);
  try {
    push(record, record->extras->priority, now_ns());  // retries imply extras
  } catch (...) {
    if (record->transition(TaskState::queued, kFinishing)) {
      release_slot();
      finish(*record, TaskState::failed, std::current_exception(), "could not be queued again for its retry");
    }
  }
  leave_in_flight();
}

void SchedulerCore::forget_retry(TaskRecord* record) noexcept {
  PendingRetry pending;  // released after the lock
  std::lock_guard lock(retry_mutex_);
  auto it = retries_.find(record);
  if (it == retries_.end()) return;
  pending = std::move(it->second);
  retries_.erase(it);
  timer_.cancel(pending.timer);
}

// --- cancellation ----------------------------------------------------------------------------------------

bool SchedulerCore::deadline_passed(const TaskRecord& record) const noexcept {
  if (record.stop.load(std::memory_order_seq_cst) == StopReason::timed_out) return true;
  const auto deadline = record.deadline();
  return deadline != Clock::time_point::max() && clock_->now() >= deadline;
}

bool SchedulerCore::stop_requested(const TaskRecord& record) const noexcept {
  if (record.stop.load(std::memory_order_seq_cst) != StopReason::none) return true;
  if (const auto* group = record.group(); group && group->cancelled.load(std::memory_order_acquire))
    return true;
  if (record.submitted_before(cancel_epoch_.load(std::memory_order_acquire))) {
    // Latched: the record keeps only 32 bits of the epoch, so 2^31 more cancel_all() calls would make the
    // comparison forget; a stop reason never goes back to none.
    auto none = StopReason::none;
    record.stop.compare_exchange_strong(none, StopReason::cancelled, std::memory_order_seq_cst);
    return true;
  }
  return deadline_passed(record);
}

bool request_stop(const std::shared_ptr<TaskRecord>& record, StopReason reason) {
  // Only a task that is not final is touched through its scheduler: until it is final, the scheduler's
  // in-flight count holds shutdown back, so the scheduler is alive even if another thread is ending it.
  const auto final_state = reason == StopReason::timed_out ? TaskState::timed_out : TaskState::cancelled;
  const bool timed_out = reason == StopReason::timed_out;
  bool asked_running_task = false;
  for (;;) {
    const auto state = record->state.load(std::memory_order_seq_cst);
    switch (state) {
      case TaskState::queued: {
        if (!record->transition(TaskState::queued, kFinishing)) continue;
        auto& core = *record->core;
        // Often off the workers (cancel(), the timer): dropping the callable may destroy the scheduler.
        InsideScope inside(&core);
        core.release_slot();  // its queue entry stays behind as a tombstone that drainers skip
        // Before finish(): once the task is final, nothing holds the scheduler alive for this thread.
        core.purge_tombstones_if_many();
        core.finish(*record, final_state, nullptr,
                    timed_out ? "its deadline passed while it was queued" : "cancelled before it started");
        return true;
      }
      case TaskState::retry_wait: {
        if (!record->transition(TaskState::retry_wait, kFinishing)) continue;
        auto& core = *record->core;
        InsideScope inside(&core);  // as above
        core.forget_retry(record.get());
        core.counters_.add(Event::retry_left);
        core.finish(*record, final_state, nullptr,
                    timed_out ? "its deadline passed while it waited to retry"
                              : "cancelled while it waited to retry");
        return true;
      }
      case TaskState::running: {
        auto none = StopReason::none;
        record->stop.compare_exchange_strong(none, reason, std::memory_order_seq_cst);
        asked_running_task = true;
        // The run may have ended meanwhile and moved the task to retry_wait before it could see the flag:
        // look again, and end it there if so (schedule_retry() re-checks the flag after publishing
        // retry_wait).
        if (record->state.load(std::memory_order_seq_cst) == TaskState::running) return true;
        continue;
      }
      default:
        // The timer is putting it back in the queue, for well under a microsecond: wait that out. (The state
        // read above, not a new read: one that found it queued by now would return with the task not ended.)
        if (state == kRequeueing) {
          std::this_thread::yield();
          continue;
        }
        return asked_running_task;  // final, or being finished by someone else
    }
  }
}

void SchedulerCore::purge_tombstones_if_many() noexcept {
  // Cancelled tasks leave their entries in the heap; they cost memory the queue capacity does not bound, so
  // once they outnumber the live entries (and there are enough to matter) the queue is rebuilt without them.
  const auto entries = static_cast<std::int64_t>(queue_.size());
  const auto live = flow_.queued.get();
  if (entries - live <= std::max<std::int64_t>(kPurgeThreshold, live)) return;
  bool idle = false;
  if (!purging_.compare_exchange_strong(idle, true, std::memory_order_acq_rel)) return;
  std::vector<QueueEntry> kept;
  QueueEntry entry;
  try {
    kept.reserve(static_cast<std::size_t>(std::max<std::int64_t>(live, 0)));
    while (queue_.try_pop(entry)) {
      if (entry.record->state.load(std::memory_order_acquire) == TaskState::queued)
        kept.push_back(std::move(entry));
    }
  } catch (...) {  // out of memory: keep what was popped, stop purging
    if (entry.record) kept.push_back(std::move(entry));
  }
  for (auto& e : kept) {
    queue_.push(std::move(e));
  }
  if (!kept.empty()) ensure_drainer();
  purging_.store(false, std::memory_order_release);
}

void SchedulerCore::cancel_all() {
  const auto epoch = cancel_epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  // Queued tasks: take everything out, cancel what was submitted before this call, put the rest back.
  std::vector<QueueEntry> later;
  QueueEntry entry;
  while (queue_.try_pop(entry)) {
    if (entry.record->submitted_before(epoch)) {
      detail::request_stop(entry.record, StopReason::cancelled);
    } else {
      later.push_back(std::move(entry));
    }
  }
  for (auto& e : later) {
    queue_.push(std::move(e));  // still counted in flow_.queued: they never left it
  }
  if (!later.empty()) ensure_drainer();
  // Retry-waiting tasks: pull them out of the timer. Running tasks see the new epoch when they poll.
  std::vector<std::shared_ptr<TaskRecord>> waiting;
  {
    std::lock_guard lock(retry_mutex_);
    for (auto& [ptr, pending] : retries_) {
      if (pending.record->submitted_before(epoch)) waiting.push_back(pending.record);
    }
  }
  for (auto& r : waiting) detail::request_stop(r, StopReason::cancelled);
}

// --- the end of a task -----------------------------------------------------------------------------------

void SchedulerCore::finish(TaskRecord& record, TaskState final_state, std::exception_ptr error,
                           std::string message, std::int64_t now, WorkerTally* tally) noexcept {
  if (final_state != TaskState::succeeded) {
    if (!error && record.failure) error = record.failure->exception;  // what made it retry, if it did
    if (message.empty()) message = describe(error);
    if (final_state == TaskState::failed) {
      logger()->debug("{} failed after {} attempt(s): {}", record.label(),
                      record.attempts.load(std::memory_order_relaxed), message);
    }
    record.failure = std::make_unique<Failure>(Failure{std::move(message), std::move(error)});
  } else {
    record.failure.reset();  // an earlier attempt's: error() is "" for a task that succeeded
  }
  if (record.extras) {
    if (auto timer = record.extras->deadline_timer.exchange(0)) timer_.cancel(timer);
  }
  record.fn = nullptr;  // free what the callable captured as soon as it cannot run again
  const auto finished = now != 0 ? now : now_ns();
  record.finished_ns.store(finished, std::memory_order_relaxed);
  if (record.admitted) {
    // From the last time it was queued to the end of its last run (or now): a retry's backoff is not latency
    // the admission policy should see, whether the task went on to run again or ended while waiting.
    const auto queued = record.queued_ns.load(std::memory_order_relaxed);
    const auto backoff_since = record.extras ? record.extras->backoff_since : 0;
    const auto latency = (backoff_since != 0 ? backoff_since : finished) -
                         (queued != 0 ? queued : record.created_ns.load(std::memory_order_relaxed));
    options_.admission->release(record.load, final_state, std::chrono::nanoseconds(latency));
  }
  switch (final_state) {
    case TaskState::succeeded:
      if (tally) {
        tally->succeeded.store(tally->succeeded.load(std::memory_order_relaxed) + 1,
                               std::memory_order_relaxed);
      } else {
        counters_.add(Event::succeeded);
      }
      break;
    case TaskState::failed:
      counters_.add(Event::failed);
      break;
    case TaskState::cancelled:
      counters_.add(Event::cancelled);
      break;
    case TaskState::timed_out:
      counters_.add(Event::timed_out);
      break;
    default:
      break;
  }
  if (auto* group = record.group()) group->leave();
  publish_final(record, final_state);
  notify_final(record);
  // Last: once the in-flight count reaches 0 the scheduler may be destroyed.
  leave_in_flight();
}

MetricsSnapshot SchedulerCore::metrics() const {
  MetricsSnapshot m;
  auto count = [this](Event e) { return static_cast<std::uint64_t>(counters_.get(e)); };
  m.submitted = count(Event::submitted);
  m.rejected = count(Event::rejected);
  m.succeeded = count(Event::succeeded);
  for (std::size_t i = 0; i < tally_count_; ++i)
    m.succeeded += tallies_[i].succeeded.load(std::memory_order_relaxed);
  m.failed = count(Event::failed);
  m.retried = count(Event::retried);
  m.cancelled = count(Event::cancelled);
  m.timed_out = count(Event::timed_out);
  m.queued = flow_.queued.get();
  m.retry_wait = counters_.get(Event::retry_entered) - counters_.get(Event::retry_left);
  m.in_flight = flow_.in_flight.get();
  if (options_.admission) {
    // One failing policy must not hide every other figure: its part stays empty, and the log says why.
    try {
      m.admission = options_.admission->stats();
    } catch (...) {
      logger()->warn("scheduler '{}': the admission policy's stats() failed: {}", options_.name,
                     describe(std::current_exception()));
    }
  }
  // Every attempt records its queue wait as it starts and its run time as it ends, so the histograms count
  // starts and ends and their difference is the running gauge: no counters of its own to bump per task.
  // Ends are read first, so an attempt counted as ended is also counted as started.
  HistogramTotals run_time, queue_wait;
  run_time.add(shared_run_time_);
  for (std::size_t i = 0; i < tally_count_; ++i) run_time.add(tallies_[i].run_time);
  queue_wait.add(shared_queue_wait_);
  for (std::size_t i = 0; i < tally_count_; ++i) queue_wait.add(tallies_[i].queue_wait);
  m.run_time = run_time.snapshot();
  m.queue_wait = queue_wait.snapshot();
  m.running = std::max<std::int64_t>(
      0, static_cast<std::int64_t>(m.queue_wait.count) - static_cast<std::int64_t>(m.run_time.count));
  return m;
}

}  // namespace detail

// --- Scheduler: the public face --------------------------------------------------------------------------

Scheduler::Scheduler(SchedulerOptions options)
    : core_(std::make_shared<detail::SchedulerCore>(std::move(options))) {}

Scheduler::~Scheduler() {
  if (core_->running_inside_this()) {
    // Draining here would wait for this very task to end. Often the task's callable held the last reference
    // to the scheduler; a destructor cannot refuse, so end with the reason rather than hang without one.
    const auto reason = fmt::format(
        "scheduler '{}' destroyed from one of its own tasks or on_final callbacks (did a task hold the last "
        "reference to it?): it would wait for itself forever; terminating",
        core_->options().name);
    const auto log = logger();
    log->critical(reason);
    log->flush();  // an application's logger may buffer
    // An asynchronous logger's flush only queues the flush, which terminate() then cuts short.
    if (dynamic_cast<spdlog::async_logger*>(log.get()) != nullptr)
      std::fprintf(stderr, "%s\n", reason.c_str());
    std::terminate();
  }
  core_->shutdown(ShutdownMode::drain);
}

TaskHandle Scheduler::submit_impl(TaskFunction fn, TaskOptions options, Wait wait,
                                  std::chrono::nanoseconds timeout) {
  // A NaN, infinite or shrinking multiplier made every backoff after the first a draw from the whole
  // max_delay range: a programming error, refused before anything is counted.
  if (const double m = options.retry.multiplier; !(std::isfinite(m) && m >= 1.0)) {
    throw std::invalid_argument(
        fmt::format("RetryPolicy::multiplier must be a finite number of at least 1 (got {})", m));
  }
  std::optional<Clock::time_point> until;
  if (wait == Wait::until_timeout) {
    until = detail::saturating_add(core_->options().clock->now(), timeout);
  }
  return core_->submit(std::move(fn), std::move(options), wait != Wait::never, until);
}

void Scheduler::cancel_all() {
  core_->cancel_all();
}
void Scheduler::wait_idle() {
  core_->wait_idle();
}
void Scheduler::execute(const std::function<void()>& fn) {
  core_->execute(fn);
}
void Scheduler::shutdown(ShutdownMode mode) {
  core_->shutdown(mode);
}
MetricsSnapshot Scheduler::metrics() const {
  return core_->metrics();
}
unsigned Scheduler::workers() const noexcept {
  return core_->options().workers;
}
const SchedulerOptions& Scheduler::options() const noexcept {
  return core_->options();
}

}  // namespace taskhive
