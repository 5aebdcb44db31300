#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "scheduler_core.hpp"
#include "support/gate.hpp"
#include "task_record.hpp"
#include "taskhive/scheduler.hpp"

using namespace std::chrono_literals;
using taskhive::ManualClock;
using taskhive::OperationCancelled;
using taskhive::Scheduler;
using taskhive::TaskContext;
using taskhive::TaskGroup;
using taskhive::TaskHandle;
using taskhive::TaskState;
using taskhive::test::Gate;
using taskhive::test::Signal;

namespace {

/// A task that signals when it starts, then polls its token until cancelled (bounded, so a bug fails the test
/// instead of hanging it).
auto poll_until_cancelled(Signal& started) {
  return [&started](TaskContext& ctx) {
    started.notify();
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < give_up) {
      ctx.throw_if_cancelled();
      std::this_thread::yield();
    }
    throw std::runtime_error("never saw cancellation");
  };
}

}  // namespace

TEST_CASE("a cancelled queued task never runs and frees its queue slot", "[cancel]") {
  Scheduler scheduler({.workers = 1, .queue_capacity = 1});
  Gate gate;
  scheduler.submit([&] { gate.wait(); });
  REQUIRE(gate.wait_for_waiters(1));
  std::atomic<int> ran{0};
  auto victim = scheduler.submit([&] { ran++; }, {.name = "victim"});
  CHECK(scheduler.try_submit([] {}).state() == TaskState::rejected);  // the one slot is taken

  CHECK(victim.cancel());
  CHECK(victim.state() == TaskState::cancelled);
  CHECK(victim.error() == "cancelled before it started");
  CHECK_FALSE(victim.cancel());  // already final
  auto next = scheduler.try_submit([&] { ran += 10; });
  CHECK(next.state() == TaskState::queued);  // the slot came back

  gate.open();
  CHECK(next.wait() == TaskState::succeeded);
  scheduler.wait_idle();
  CHECK(ran == 10);
  CHECK(victim.attempts() == 0);
  CHECK(scheduler.metrics().cancelled == 1);
}

TEST_CASE("cancelling a running task sets the token it polls", "[cancel]") {
  Scheduler scheduler({.workers = 1});
  Signal started;
  auto task = scheduler.submit(poll_until_cancelled(started), {.name = "poller"});
  REQUIRE(started.wait_for_count(1));
  CHECK(task.state() == TaskState::running);
  CHECK(task.cancel());
  CHECK(task.wait() == TaskState::cancelled);
  CHECK(task.error() == "task 'poller' was cancelled");
}

TEST_CASE("a running task that ignores cancellation and returns succeeds", "[cancel]") {
  Scheduler scheduler({.workers = 1});
  Gate gate;
  Signal started;
  bool saw_request = false;
  auto task = scheduler.submit([&](TaskContext& ctx) {
    started.notify();
    gate.wait();
    saw_request = ctx.cancellation_requested();
  });
  REQUIRE(started.wait_for_count(1));
  task.cancel();
  gate.open();
  CHECK(task.wait() == TaskState::succeeded);
  CHECK(saw_request);
}

TEST_CASE("a cancelled task is not retried", "[cancel][retry]") {
  Scheduler scheduler({.workers = 1});
  Signal started;
  auto task =
      scheduler.submit(poll_until_cancelled(started), {.retry = {.max_retries = 5, .initial_delay = 1ms}});
  REQUIRE(started.wait_for_count(1));
  task.cancel();
  CHECK(task.wait() == TaskState::cancelled);
  CHECK(task.attempts() == 1);
}

TEST_CASE("cancelling a task waiting to retry ends it without another run", "[cancel][retry]") {
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  std::atomic<int> runs{0};
  auto task = scheduler.submit([&] { runs++, throw std::runtime_error("no"); },
                               {.retry = {.max_retries = 3, .initial_delay = 1h, .jitter = false}});
  while (task.state() != TaskState::retry_wait) std::this_thread::yield();
  CHECK(scheduler.metrics().retry_wait == 1);
  CHECK(task.cancel());
  CHECK(task.state() == TaskState::cancelled);
  CHECK(task.error() == "cancelled while it waited to retry");
  clock->advance(2h);
  scheduler.wait_idle();
  CHECK(runs == 1);
  CHECK(scheduler.metrics().retry_wait == 0);
}

TEST_CASE("a task group cancels its members together", "[cancel][group]") {
  Scheduler scheduler({.workers = 1});
  TaskGroup group;
  Signal started;
  std::atomic<int> ran{0};
  auto running = scheduler.submit(poll_until_cancelled(started), {.group = group});
  REQUIRE(started.wait_for_count(1));
  std::vector<TaskHandle> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(scheduler.submit([&] { ran++; }, {.group = group}));
  auto outsider = scheduler.submit([&] { ran += 100; });
  CHECK(group.active() == 6);

  group.cancel();
  CHECK(group.cancelled());
  CHECK(running.wait() == TaskState::cancelled);
  for (auto& h : queued) CHECK(h.wait() == TaskState::cancelled);
  CHECK(outsider.wait() == TaskState::succeeded);
  CHECK(ran == 100);
  CHECK(group.active() == 0);

  SECTION("a task submitted into a cancelled group ends cancelled without running") {
    auto late = scheduler.submit([&] { ran++; }, {.group = group});
    CHECK(late.state() == TaskState::cancelled);
    CHECK(late.error() == "its task group was cancelled before it was submitted");
    CHECK(ran == 100);
  }
}

TEST_CASE("a group whose members cancel it from on_final is walked once", "[cancel][group]") {
  // "First result wins": every member's on_final cancels the group. Each cancel() used to walk the whole
  // member list again from inside the previous one: memory and stack quadratic in the group's size, and a
  // stack overflow at 20000 members.
  constexpr int kMembers = 20'000;
  Scheduler scheduler({.workers = 1, .queue_capacity = kMembers + 1});
  Gate gate;
  scheduler.submit([&] { gate.wait(); });
  REQUIRE(gate.wait_for_waiters(1));
  TaskGroup group;
  std::atomic<int> finals{0};
  for (int i = 0; i < kMembers; ++i) {
    scheduler.submit([] {}, {.group = group, .on_final = [&finals, group](const TaskHandle&) mutable {
                               finals++;
                               group.cancel();
                             }});
  }
  group.cancel();
  gate.open();
  scheduler.wait_idle();
  CHECK(finals == kMembers);
  CHECK(scheduler.metrics().cancelled == kMembers);
  CHECK(group.active() == 0);
}

TEST_CASE("a moved-from task group still refers to the group", "[cancel][group]") {
  Scheduler scheduler({.workers = 1});
  TaskGroup group;
  TaskGroup moved = std::move(group);
  // NOLINTNEXTLINE(bugprone-use-after-move): the point of the test
  auto member = scheduler.submit([] {}, {.group = group});
  group.cancel();
  CHECK(moved.cancelled());
  CHECK(member.wait() != TaskState::failed);  // succeeded, or cancelled if it had not run yet
  CHECK(moved.active() == 0);
}

TEST_CASE("cancel_all ends every accepted task but not later ones", "[cancel]") {
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  auto retrying = scheduler.submit([] { throw std::runtime_error("x"); },
                                   {.retry = {.max_retries = 1, .initial_delay = 1h}});
  while (retrying.state() != TaskState::retry_wait) std::this_thread::yield();
  Signal started;
  auto running = scheduler.submit(poll_until_cancelled(started));
  REQUIRE(started.wait_for_count(1));
  std::vector<TaskHandle> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(scheduler.submit([] {}));

  scheduler.cancel_all();
  CHECK(retrying.wait() == TaskState::cancelled);
  CHECK(running.wait() == TaskState::cancelled);
  for (auto& h : queued) CHECK(h.wait() == TaskState::cancelled);

  auto after = scheduler.submit([] {});
  CHECK(after.wait() == TaskState::succeeded);
  scheduler.wait_idle();
  const auto m = scheduler.metrics();
  CHECK(m.cancelled == 12);
  CHECK(m.submitted == m.finished());
}

TEST_CASE("a queued task whose deadline passes ends timed_out without running", "[cancel][timeout]") {
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  Gate gate;
  scheduler.submit([&] { gate.wait(); });
  REQUIRE(gate.wait_for_waiters(1));
  std::atomic<int> ran{0};
  auto late = scheduler.submit([&] { ran++; }, {.name = "late", .timeout = 5s});
  auto patient = scheduler.submit([&] { ran += 10; }, {.timeout = 1min});

  clock->advance(4s);
  CHECK_FALSE(late.wait_for(0ms));
  clock->advance(1s);
  CHECK(late.wait() == TaskState::timed_out);  // woken by the timer, not by a worker
  CHECK(late.error() == "its deadline passed while it was queued");
  gate.open();
  CHECK(patient.wait() == TaskState::succeeded);
  scheduler.wait_idle();
  CHECK(ran == 10);
  CHECK(scheduler.metrics().timed_out == 1);
}

TEST_CASE("a running task sees its deadline expire on its token", "[cancel][timeout]") {
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  Signal started;
  auto task = scheduler.submit(poll_until_cancelled(started), {.name = "slow", .timeout = 2s});
  REQUIRE(started.wait_for_count(1));
  clock->advance(2s);
  CHECK(task.wait() == TaskState::timed_out);
  CHECK(task.error() == "task 'slow' passed its deadline");
}

TEST_CASE("an absolute deadline already past ends the task at once", "[cancel][timeout]") {
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  std::atomic<int> ran{0};
  auto task = scheduler.submit([&] { ran++; }, {.deadline = clock->now() - 1s});
  CHECK(task.wait() == TaskState::timed_out);
  scheduler.wait_idle();
  CHECK(ran == 0);
}

TEST_CASE("a deadline bounds retries too", "[cancel][timeout][retry]") {
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  auto task =
      scheduler.submit([] { throw std::runtime_error("flaky"); },
                       {.retry = {.max_retries = 10, .initial_delay = 10s, .jitter = false}, .timeout = 5s});
  while (task.state() != TaskState::retry_wait) std::this_thread::yield();
  clock->advance(5s);
  CHECK(task.wait() == TaskState::timed_out);
  CHECK(task.error() == "its deadline passed while it waited to retry");
}

TEST_CASE("a cancel racing a task's move into retry_wait is not lost", "[cancel][retry]") {
  // The task throws and is cancelled at nearly the same moment, many times over, so the cancel lands before,
  // during and after the switch to retry_wait. On a manual clock the 1 h backoff never ends by itself: a lost
  // cancel would leave the task waiting forever instead of ending cancelled.
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  for (int i = 0; i < 2000; ++i) {
    std::atomic<bool> about_to_throw{false};
    auto task = scheduler.submit(
        [&] {
          about_to_throw = true;
          throw std::runtime_error("fails once");
        },
        {.retry = {.max_retries = 1, .initial_delay = 1h, .jitter = false}});
    while (!about_to_throw) std::this_thread::yield();
    task.cancel();
    REQUIRE(task.wait_for(30s));
    REQUIRE(task.state() == TaskState::cancelled);
  }
  scheduler.shutdown(taskhive::ShutdownMode::cancel);
  CHECK(scheduler.metrics().retry_wait == 0);
}

TEST_CASE("a task seen final has its error and finish time recorded", "[cancel]") {
  // cancel() on one thread, done() then error() on another: the final state must not show before the rest.
  Scheduler scheduler({.workers = 1});
  Gate gate;
  scheduler.submit([&] { gate.wait(); });
  REQUIRE(gate.wait_for_waiters(1));
  for (int i = 0; i < 2000; ++i) {
    auto task = scheduler.submit([] {});
    std::thread canceller([&] { task.cancel(); });
    while (!task.done()) std::this_thread::yield();
    CHECK(task.error() == "cancelled before it started");
    CHECK(task.finished_at().has_value());
    canceller.join();
  }
  gate.open();
  scheduler.wait_idle();
  CHECK(scheduler.metrics().cancelled == 2000);
}

TEST_CASE("a task cancelled while waiting to retry keeps the exception that made it retry",
          "[cancel][retry]") {
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  auto task = scheduler.submit([] { throw std::runtime_error("first failure"); },
                               {.retry = {.max_retries = 3, .initial_delay = 1h, .jitter = false}});
  while (task.state() != TaskState::retry_wait) std::this_thread::yield();
  task.cancel();
  CHECK(task.wait() == TaskState::cancelled);
  CHECK(task.error() == "cancelled while it waited to retry");
  REQUIRE(task.exception() != nullptr);
  CHECK_THROWS_WITH(std::rethrow_exception(task.exception()), "first failure");
}

TEST_CASE("a blocked submitter is not stranded when another one's group was cancelled",
          "[cancel][group][capacity]") {
  Scheduler scheduler({.workers = 1, .queue_capacity = 1});
  Gate gate;
  scheduler.submit([&] { gate.wait(); });
  REQUIRE(gate.wait_for_waiters(1));
  scheduler.submit([] {});  // the one slot
  TaskGroup cancelled_group;
  cancelled_group.cancel();
  TaskHandle into_group, ordinary;
  std::thread first([&] { into_group = scheduler.submit([] {}, {.group = cancelled_group}); });
  std::thread second([&] { ordinary = scheduler.submit([] {}); });
  gate.open();  // the slot frees; whichever submitter wins it, the other must get one too
  first.join();
  second.join();
  CHECK(into_group.state() == TaskState::cancelled);
  CHECK(ordinary.wait() == TaskState::succeeded);
}

TEST_CASE("cancel_all() epochs compare across the 32-bit wrap of a record's copy", "[cancel]") {
  taskhive::detail::TaskRecord record;
  record.cancel_epoch = 0xFFFF'FFFFu;  // submitted at epoch 2^32 - 1
  CHECK_FALSE(record.submitted_before(0xFFFF'FFFFull));
  CHECK(record.submitted_before(0x1'0000'0000ull));  // one cancel_all() later: the low bits wrapped to 0
  CHECK(record.submitted_before(0x1'0000'0005ull));
  record.cancel_epoch = 3;
  CHECK_FALSE(record.submitted_before(3));
  CHECK(record.submitted_before(4));
  CHECK_FALSE(record.submitted_before(2));  // a task submitted after that cancel_all()
}

TEST_CASE("a cancel_all() a task has seen stays seen when the epoch comparison would forget it", "[cancel]") {
  taskhive::detail::SchedulerCore core({.workers = 1});
  taskhive::detail::TaskRecord record;  // submitted at epoch 0
  core.cancel_all();                    // epoch 1
  CHECK(core.stop_requested(record));
  // As if 2^31 more cancel_all() calls had gone by: the 32-bit comparison no longer says "before".
  record.cancel_epoch = 1;
  CHECK_FALSE(record.submitted_before(1));
  CHECK(core.stop_requested(record));  // latched into the record's stop reason by the first poll
  CHECK(record.stop.load() == taskhive::detail::StopReason::cancelled);
}
