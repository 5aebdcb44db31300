// Priorities: which queued task starts next.
//
// Part 1 (QueueOrder::strict): higher priority runs first, and tasks of equal priority run in the order they
// were submitted.
// Part 2 (QueueOrder::aging, the default): waiting earns priority, so a low-priority task that has been
// queued long enough runs before a newer high-priority one. A ManualClock makes "long enough" exact: time
// moves only when we say so, so the example needs no sleeps and always gives the same answer.
//
// Both parts use one worker and a "gate" task that holds it, so that every other task is queued before any
// of them can start; otherwise the first submission would start at once and there would be nothing to order.

#include <chrono>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <taskhive/clock.hpp>
#include <taskhive/scheduler.hpp>

namespace {

using namespace std::chrono_literals;

// Records the order in which tasks ran (tasks run on worker threads, main() reads the result).
class RunLog {
 public:
  void add(std::string name) {
    std::lock_guard lock(mutex_);
    order_.push_back(std::move(name));
  }
  std::vector<std::string> order() const {
    std::lock_guard lock(mutex_);
    return order_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> order_;
};

// Occupies the scheduler's only worker until release() is called.
class Gate {
 public:
  explicit Gate(taskhive::Scheduler& scheduler) {
    handle_ = scheduler.submit(
        [this] {
          started_.count_down();
          released_.wait();
        },
        {.name = "gate"});
    started_.wait();  // the worker is now busy: everything submitted from here on is queued
  }
  ~Gate() { release(); }  // never leave the worker blocked, or the scheduler's destructor would wait forever
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  void release() {
    if (!released_.try_wait()) released_.count_down();
    handle_.wait();
  }

 private:
  std::latch started_{1};
  std::latch released_{1};
  taskhive::TaskHandle handle_;
};

bool check(const char* what, const std::vector<std::string>& got, const std::vector<std::string>& want) {
  fmt::print("  ran:      {}\n", fmt::join(got, ", "));
  if (got == want) {
    fmt::print("  OK: {}\n\n", what);
    return true;
  }
  fmt::print("  FAILED: {}\n  expected: {}\n\n", what, fmt::join(want, ", "));
  return false;
}

bool strict_priorities() {
  fmt::print("1. Strict order: highest priority first, FIFO within a priority\n");
  // Strict order ignores how long tasks waited, so the result does not depend on timing at all.
  taskhive::Scheduler scheduler({.workers = 1, .order = taskhive::QueueOrder::strict, .name = "strict"});
  RunLog log;
  Gate gate(scheduler);

  struct Job {
    const char* name;
    int priority;
  };
  const std::vector<Job> jobs = {{"backup", 0},  {"email-1", 5}, {"thumbnail", 1}, {"alert-1", 9},
                                 {"email-2", 5}, {"cleanup", 0}, {"alert-2", 9}};
  for (const auto& job : jobs) {
    fmt::print("  submit {:<10} priority {}\n", job.name, job.priority);
    scheduler.submit([&log, name = std::string(job.name)] { log.add(name); },
                     {.name = job.name, .priority = job.priority});
  }
  gate.release();
  scheduler.wait_idle();

  return check("priority 9, then 5, 1, 0; equal priorities in submission order", log.order(),
               {"alert-1", "alert-2", "email-1", "email-2", "thumbnail", "backup", "cleanup"});
}

bool aging() {
  fmt::print("2. Aging order: waiting earns priority (aging_step = 100 ms of waiting per priority level)\n");
  // A task queued at time t with priority p is ordered by t - p * aging_step: the earlier, the sooner.
  auto clock = std::make_shared<taskhive::ManualClock>();
  taskhive::Scheduler scheduler({.workers = 1,
                                 .order = taskhive::QueueOrder::aging,
                                 .aging_step = 100ms,
                                 .clock = clock,
                                 .name = "aging"});
  RunLog log;
  Gate gate(scheduler);
  auto submit = [&](const char* name, int priority) {
    scheduler.submit([&log, n = std::string(name)] { log.add(n); }, {.name = name, .priority = priority});
  };

  fmt::print("  t = 0 s:   submit old-low    priority 0   (ordered as t = 0 s)\n");
  submit("old-low", 0);
  clock->advance(1s);  // old-low has now waited 1 s, worth 10 priority levels
  fmt::print("  t = 1 s:   submit new-high   priority 5   (ordered as t = 1 s - 5 x 100 ms = 0.5 s)\n");
  submit("new-high", 5);
  fmt::print("  t = 1 s:   submit new-low    priority 0   (ordered as t = 1 s)\n");
  submit("new-low", 0);
  fmt::print("  t = 1 s:   submit new-urgent priority 20 (ordered as t = 1 s - 20 x 100 ms = -1 s)\n");
  submit("new-urgent", 20);
  gate.release();
  scheduler.wait_idle();

  return check(
      "old-low waited 1 s (10 levels) and overtakes new-high (+5); new-urgent (+20) still goes first",
      log.order(), {"new-urgent", "old-low", "new-high", "new-low"});
}

}  // namespace

int main() {
  bool ok = strict_priorities();
  ok = aging() && ok;
  fmt::print("{}\n", ok ? "example_priorities: all checks passed" : "example_priorities: FAILED");
  return ok ? 0 : 1;
}
