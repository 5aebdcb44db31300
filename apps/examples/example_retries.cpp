// Retries: a task that throws runs again after a backoff, up to RetryPolicy::max_retries more times.
//
// A "flaky" task fails on its first two attempts and succeeds on the third. With
// RetryPolicy{.max_retries = 3, .initial_delay = 20ms, .jitter = false} the backoffs are exactly 20 ms and
// then 40 ms (the delay doubles each retry; jitter would randomise it, which real systems want and tests do
// not).
//
// The point to notice: the scheduler has ONE worker, yet other tasks run while the flaky task waits out its
// backoff. A retry waits in the scheduler's timer thread, not asleep on a worker, so a burst of failures does
// not stall the pool.

#include <chrono>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <taskhive/scheduler.hpp>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// What happened, and when, in the order it happened (tasks run on worker threads; main() reads the log).
struct Event {
  Clock::time_point at;
  std::string what;
};

class Timeline {
 public:
  void add(std::string what) {
    std::lock_guard lock(mutex_);
    events_.push_back({Clock::now(), std::move(what)});
  }
  std::vector<Event> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Event> events_;
};

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

int main() {
  bool ok = true;
  auto expect = [&ok](bool condition, const std::string& what) {
    fmt::print("  {}: {}\n", condition ? "OK" : "FAILED", what);
    ok = ok && condition;
  };

  taskhive::Scheduler scheduler({.workers = 1, .name = "retries"});
  Timeline timeline;

  // Hold the only worker until everything is submitted, so the order below does not depend on timing.
  std::latch gate_started{1}, gate_open{1};
  scheduler.submit(
      [&] {
        gate_started.count_down();
        gate_open.wait();
      },
      {.name = "gate"});
  gate_started.wait();

  // The flaky task. ctx.attempt() is 1 on the first run, 2 on the first retry, and so on.
  const taskhive::RetryPolicy retry{.max_retries = 3, .initial_delay = 20ms, .jitter = false};
  auto flaky = scheduler.submit(
      [&](taskhive::TaskContext& ctx) {
        if (ctx.attempt() <= 2) {
          timeline.add(fmt::format("flaky: attempt {} failed", ctx.attempt()));
          throw std::runtime_error(fmt::format("connection reset (attempt {})", ctx.attempt()));
        }
        timeline.add(fmt::format("flaky: attempt {} succeeded", ctx.attempt()));
      },
      {.name = "flaky", .retry = retry});

  // Other work, queued behind the flaky task's first attempt. All tasks here have the same priority, so they
  // run in submission order; a retry is queued again when its backoff ends, behind whatever is waiting.
  constexpr int kOthers = 4;
  for (int i = 1; i <= kOthers; ++i) {
    scheduler.submit([&timeline, i] { timeline.add(fmt::format("other-{} ran", i)); },
                     {.name = fmt::format("other-{}", i)});
  }

  gate_open.count_down();
  const auto final_state = flaky.wait();
  scheduler.wait_idle();

  // Print the timeline, relative to the flaky task's first failure.
  const auto events = timeline.events();
  fmt::print("Timeline (one worker):\n");
  for (const auto& e : events) fmt::print("  {:7.2f} ms  {}\n", ms_between(events.front().at, e.at), e.what);
  fmt::print("\nflaky: {} after {} attempts\n\n", taskhive::to_string(final_state), flaky.attempts());

  // Find the flaky task's attempts in the timeline.
  auto index_of = [&](const std::string& what) {
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (events[i].what == what) return static_cast<int>(i);
    }
    return -1;
  };
  const int fail1 = index_of("flaky: attempt 1 failed");
  const int fail2 = index_of("flaky: attempt 2 failed");
  const int success = index_of("flaky: attempt 3 succeeded");

  fmt::print("Checks:\n");
  expect(final_state == taskhive::TaskState::succeeded && flaky.attempts() == 3,
         "the flaky task succeeded on its third attempt");
  expect(fail1 == 0 && fail2 == kOthers + 1 && success == kOthers + 2,
         fmt::format("all {} other tasks ran during the first backoff, on the only worker", kOthers));
  if (fail1 >= 0 && fail2 >= 0 && success >= 0) {
    const double first = ms_between(events[fail1].at, events[fail2].at);
    const double second = ms_between(events[fail2].at, events[success].at);
    expect(first >= 20.0, fmt::format("first backoff {:.1f} ms >= 20 ms (initial_delay)", first));
    expect(second >= 40.0,
           fmt::format("second backoff {:.1f} ms >= 40 ms (initial_delay x multiplier 2)", second));
  }
  expect(scheduler.metrics().retried == 2, "metrics().retried == 2");

  // When the retries run out, the task ends failed and error() is the last attempt's exception message.
  auto hopeless = scheduler.submit(
      [](taskhive::TaskContext& ctx) -> void {
        throw std::runtime_error(fmt::format("disk full (attempt {})", ctx.attempt()));
      },
      {.name = "hopeless", .retry = {.max_retries = 2, .initial_delay = 1ms}});
  hopeless.wait();
  fmt::print("\nhopeless: {} after {} attempts, error(): \"{}\"\n", taskhive::to_string(hopeless.state()),
             hopeless.attempts(), hopeless.error());
  expect(hopeless.state() == taskhive::TaskState::failed && hopeless.attempts() == 3 &&
             hopeless.error() == "disk full (attempt 3)",
         "a task that keeps failing ends failed after 1 + max_retries attempts");

  fmt::print("\n{}\n", ok ? "example_retries: all checks passed" : "example_retries: FAILED");
  return ok ? 0 : 1;
}
