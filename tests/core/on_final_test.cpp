#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "support/gate.hpp"
#include "taskhive/scheduler.hpp"

using namespace std::chrono_literals;
using taskhive::ManualClock;
using taskhive::Scheduler;
using taskhive::TaskHandle;
using taskhive::TaskOptions;
using taskhive::TaskState;
using taskhive::test::Gate;
using taskhive::test::Signal;

namespace {

// Remembers every on_final call: the final states seen, in order.
struct Finals {
  std::mutex mutex;
  std::vector<TaskState> states;
  std::function<void(const TaskHandle&)> callback() {
    return [this](const TaskHandle& handle) {
      std::lock_guard lock(mutex);
      states.push_back(handle.state());
    };
  }
  std::vector<TaskState> seen() {
    std::lock_guard lock(mutex);
    return states;
  }
};

}  // namespace

TEST_CASE("on_final is called once with the final state, before wait_idle returns", "[scheduler][on_final]") {
  Scheduler scheduler({.workers = 2});
  Finals finals;
  scheduler.submit([] {}, {.name = "ok", .on_final = finals.callback()});
  scheduler.submit(
      [] { throw std::runtime_error("no"); },
      {.name = "bad", .retry = {.max_retries = 2, .initial_delay = 0ms}, .on_final = finals.callback()});
  scheduler.wait_idle();
  auto seen = finals.seen();
  REQUIRE(seen.size() == 2);
  CHECK(std::count(seen.begin(), seen.end(), TaskState::succeeded) == 1);
  CHECK(std::count(seen.begin(), seen.end(), TaskState::failed) == 1);
}

TEST_CASE("on_final sees tasks that end without running", "[scheduler][on_final]") {
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  Gate gate;
  auto blocker = scheduler.submit([&] { gate.wait(); });
  REQUIRE(gate.wait_for_waiters(1));
  Finals finals;
  auto cancelled = scheduler.submit([] {}, {.on_final = finals.callback()});
  auto timed_out = scheduler.submit([] {}, {.timeout = 1s, .on_final = finals.callback()});
  cancelled.cancel();
  CHECK(finals.seen() == std::vector<TaskState>{TaskState::cancelled});  // on the thread that cancelled
  clock->advance(2s);
  CHECK(timed_out.wait() == TaskState::timed_out);
  gate.open();
  scheduler.wait_idle();
  CHECK(finals.seen() == std::vector<TaskState>{TaskState::cancelled, TaskState::timed_out});

  scheduler.shutdown();
  auto refused = scheduler.try_submit([] {}, {.on_final = finals.callback()});
  CHECK(refused.state() == TaskState::rejected);
  CHECK(finals.seen().back() == TaskState::rejected);  // before try_submit returned
}

TEST_CASE("on_final may start follow-up work, even on one worker", "[scheduler][on_final]") {
  Scheduler scheduler({.workers = 1, .queue_capacity = 4});
  std::atomic<int> ran{0};
  // Each task's end submits the next: a chain of 100 that never blocks the only worker.
  std::function<void(int)> link = [&](int n) {
    TaskOptions options;
    if (n < 100) options.on_final = [&, n](const TaskHandle&) { link(n + 1); };
    scheduler.try_submit([&] { ++ran; }, std::move(options));
  };
  link(1);
  scheduler.wait_idle();
  CHECK(ran == 100);
}

TEST_CASE("an on_final that throws does not disturb the scheduler", "[scheduler][on_final]") {
  Scheduler scheduler({.workers = 1});
  auto task =
      scheduler.submit([] {}, {.on_final = [](const TaskHandle&) { throw std::runtime_error("oops"); }});
  CHECK(task.wait() == TaskState::succeeded);
  scheduler.wait_idle();
  CHECK(scheduler.submit([] {}).wait() == TaskState::succeeded);
}
