#include <catch2/catch.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/gate.hpp"
#include "taskhive/scheduler.hpp"
#include "test_seams.hpp"

using namespace std::chrono_literals;
using taskhive::RejectReason;
using taskhive::Scheduler;
using taskhive::ShutdownMode;
using taskhive::TaskContext;
using taskhive::TaskHandle;
using taskhive::TaskState;
using taskhive::test::Gate;
using taskhive::test::Signal;

TEST_CASE("drain runs everything queued, pending retries included", "[shutdown]") {
  Scheduler scheduler({.workers = 2});
  std::atomic<int> ran{0};
  std::atomic<int> flaky_attempts{0};
  std::vector<TaskHandle> handles;
  for (int i = 0; i < 500; ++i) handles.push_back(scheduler.submit([&] { ran++; }, {.priority = i % 7}));
  auto flaky = scheduler.submit(
      [&] {
        if (++flaky_attempts < 3) throw std::runtime_error("not yet");
      },
      {.retry = {.max_retries = 5, .initial_delay = 2ms, .jitter = false}});
  scheduler.shutdown(ShutdownMode::drain);
  CHECK(ran == 500);
  CHECK(flaky.state() == TaskState::succeeded);
  CHECK(flaky_attempts == 3);
  for (auto& h : handles) CHECK(h.state() == TaskState::succeeded);
  const auto m = scheduler.metrics();
  CHECK(m.submitted == 501);
  CHECK(m.succeeded == 501);
  CHECK(m.in_flight == 0);
}

TEST_CASE("cancel-mode shutdown ends queued and retry-waiting tasks and waits for running ones",
          "[shutdown]") {
  Scheduler scheduler({.workers = 1});
  std::atomic<int> ran{0};
  auto retrying = scheduler.submit([] { throw std::runtime_error("x"); },
                                   {.retry = {.max_retries = 3, .initial_delay = 1h}});
  while (retrying.state() != TaskState::retry_wait) std::this_thread::yield();
  Gate gate;
  auto running = scheduler.submit([&] { gate.wait(), ran++; });
  REQUIRE(gate.wait_for_waiters(1));
  std::vector<TaskHandle> queued;
  for (int i = 0; i < 50; ++i) queued.push_back(scheduler.submit([&] { ran += 100; }));

  std::thread stopper([&] { scheduler.shutdown(ShutdownMode::cancel); });
  for (auto& h : queued) CHECK(h.wait() == TaskState::cancelled);
  CHECK(retrying.wait() == TaskState::cancelled);
  gate.open();  // the running task finishes normally: shutdown waits for it
  stopper.join();
  CHECK(running.state() == TaskState::succeeded);
  CHECK(ran == 1);
  const auto m = scheduler.metrics();
  CHECK(m.submitted == m.finished());
  CHECK(m.cancelled == 51);
}

TEST_CASE("cancel-mode shutdown asks running tasks to stop and waits for them", "[shutdown]") {
  Scheduler scheduler({.workers = 1});
  Signal started;
  auto polling = scheduler.submit([&](TaskContext& ctx) {
    started.notify();
    // Bounded, so that a shutdown that forgot running tasks fails the check below instead of hanging.
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    while (!ctx.cancellation_requested() && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
    ctx.throw_if_cancelled();
  });
  REQUIRE(started.wait_for_count(1));
  scheduler.shutdown(ShutdownMode::cancel);
  CHECK(polling.state() == TaskState::cancelled);
  CHECK(polling.error() == "a task was cancelled");
}

TEST_CASE("after shutdown, submissions are rejected with the reason", "[shutdown]") {
  Scheduler scheduler({.workers = 1, .name = "jobs"});
  scheduler.shutdown();
  scheduler.shutdown();  // idempotent
  auto late = scheduler.submit([] {});
  CHECK(late.state() == TaskState::rejected);
  CHECK(late.error() == "scheduler 'jobs' is shutting down and accepts no new tasks");
  CHECK(late.reject_reason() == RejectReason::shutting_down);
  CHECK(to_string(late.reject_reason()) == "shutting_down");
  CHECK(scheduler.try_submit([] {}).state() == TaskState::rejected);
  CHECK(scheduler.metrics().rejected == 2);
  CHECK(scheduler.metrics().submitted == 0);
}

TEST_CASE("shutdown() and wait_idle() from the scheduler's own tasks and on_final refuse instead of hanging",
          "[shutdown][on_final]") {
  Scheduler scheduler({.workers = 1, .name = "self"});
  Scheduler other({.workers = 1, .name = "other"});
  auto refusal = [](const std::function<void()>& call) -> std::string {
    try {
      call();
    } catch (const std::logic_error& e) {
      return e.what();
    }
    return "(no refusal)";
  };
  std::string from_task_shutdown, from_task_wait, from_task_other, from_worker_final, from_caller_final;
  auto task = scheduler.submit(
      [&] {
        from_task_shutdown = refusal([&] { scheduler.shutdown(ShutdownMode::cancel); });
        from_task_wait = refusal([&] { scheduler.wait_idle(); });
        from_task_other = refusal([&] { other.wait_idle(); });  // another scheduler's: nothing to refuse
      },
      {.on_final = [&](const TaskHandle&) { from_worker_final = refusal([&] { scheduler.shutdown(); }); }});
  REQUIRE(task.wait() == TaskState::succeeded);
  scheduler.wait_idle();  // on_final has returned
  CHECK(from_task_shutdown ==
        "scheduler 'self': shutdown() was called from one of its own tasks or on_final callbacks, and would "
        "wait for that very call to end");
  CHECK(from_task_wait.find("scheduler 'self': wait_idle() was called from one of its own tasks") == 0);
  CHECK(from_task_other == "(no refusal)");
  CHECK(from_worker_final.find("shutdown() was called from") != std::string::npos);

  // An on_final run by the thread that cancels a queued task: on the caller's thread, not a worker.
  Gate gate;
  scheduler.submit([&] { gate.wait(); });
  REQUIRE(gate.wait_for_waiters(1));
  auto queued = scheduler.submit([] {}, {.on_final = [&](const TaskHandle&) {
                                   from_caller_final = refusal([&] { scheduler.wait_idle(); });
                                 }});
  queued.cancel();
  CHECK(from_caller_final.find("wait_idle() was called from") != std::string::npos);
  gate.open();

  // The refused calls changed nothing: the scheduler still accepts and runs work.
  CHECK(scheduler.submit([] {}).wait() == TaskState::succeeded);
  scheduler.shutdown();
  CHECK(scheduler.try_submit([] {}).reject_reason() == RejectReason::shutting_down);
}

TEST_CASE("a submitter blocked on a full queue is rejected when shutdown begins", "[shutdown][capacity]") {
  Scheduler scheduler({.workers = 1, .queue_capacity = 1});
  Gate gate;
  scheduler.submit([&] { gate.wait(); });
  REQUIRE(gate.wait_for_waiters(1));
  scheduler.submit([] {});  // fills the queue
  TaskHandle blocked;
  std::thread submitter([&] { blocked = scheduler.submit([] {}); });
  std::thread stopper([&] { scheduler.shutdown(ShutdownMode::cancel); });
  submitter.join();  // returns once shutdown has begun
  gate.open();
  stopper.join();
  CHECK(blocked.state() == TaskState::rejected);
}

TEST_CASE("the destructor drains", "[shutdown]") {
  std::atomic<int> ran{0};
  std::vector<TaskHandle> handles;
  {
    Scheduler scheduler({.workers = 2});
    for (int i = 0; i < 1000; ++i) handles.push_back(scheduler.submit([&] { ran++; }));
  }
  CHECK(ran == 1000);
  for (auto& h : handles) CHECK(h.state() == TaskState::succeeded);
  // Handles outlive the scheduler; cancelling a finished task is a harmless no-op.
  CHECK_FALSE(handles.front().cancel());
}

TEST_CASE("nothing is lost when many producers race a drain", "[shutdown]") {
  Scheduler scheduler({.workers = 2, .queue_capacity = 256});
  constexpr int kProducers = 6;
  std::atomic<int> accepted{0}, refused{0}, ran{0};
  std::vector<std::thread> producers;
  Signal half_way;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < 5000; ++i) {
        auto h = (i % 2) ? scheduler.try_submit([&] { ran++; }) : scheduler.submit([&] { ran++; });
        (h.state() == TaskState::rejected ? refused : accepted)++;
        if (i == 2500 && p == 0) half_way.notify();
      }
    });
  }
  REQUIRE(half_way.wait_for_count(1));
  scheduler.shutdown(ShutdownMode::drain);
  for (auto& t : producers) t.join();
  const auto m = scheduler.metrics();
  CHECK(accepted + refused == kProducers * 5000);
  CHECK(m.submitted == static_cast<std::uint64_t>(accepted.load()));
  CHECK(m.rejected == static_cast<std::uint64_t>(refused.load()));
  CHECK(m.succeeded == static_cast<std::uint64_t>(ran.load()));
  CHECK(m.submitted == m.finished());
}

TEST_CASE("shutdown(cancel) cuts short a drain already in progress", "[shutdown]") {
  Scheduler scheduler({.workers = 1});
  Gate gate;
  scheduler.submit([&] { gate.wait(); });
  REQUIRE(gate.wait_for_waiters(1));
  std::vector<TaskHandle> queued;
  for (int i = 0; i < 20; ++i) queued.push_back(scheduler.submit([] {}));
  std::thread drainer([&] { scheduler.shutdown(ShutdownMode::drain); });
  std::thread canceller([&] { scheduler.shutdown(ShutdownMode::cancel); });
  for (auto& h : queued) CHECK(h.wait() == TaskState::cancelled);  // the drain alone would wait for the gate
  gate.open();
  drainer.join();
  canceller.join();
  CHECK(scheduler.metrics().submitted == scheduler.metrics().finished());
}

namespace {

// For the test below (a seam is a plain function pointer): set once the scheduler is destroyed, and whether
// that happened while the thread that ended the last task was still inside the scheduler.
std::atomic<bool> scheduler_destroying{false};
std::atomic<bool> scheduler_destroyed{false};
std::atomic<bool> destroyed_under_the_last_task{false};
Signal last_task_leaving;

void hold_the_last_leave() {
  last_task_leaving.notify();
  // Once the main thread is in the destructor, give it every chance to finish now; it must not be able to
  // until this thread is done with the scheduler. (The second bound is the one wait in the test that passes
  // by running out; it starts only when the destructor does, so a slow machine does not shorten it.)
  const auto safety = std::chrono::steady_clock::now() + 30s;
  while (!scheduler_destroying.load() && std::chrono::steady_clock::now() < safety) std::this_thread::yield();
  const auto until = std::chrono::steady_clock::now() + 200ms;
  while (!scheduler_destroyed.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  destroyed_under_the_last_task = scheduler_destroyed.load();
}

}  // namespace

TEST_CASE("a scheduler destroyed as soon as its last task is cancelled waits for the cancelling thread",
          "[shutdown]") {
  // The last task in flight is cancelled from a thread of the application, which the scheduler does not
  // own or join. The main thread sees the task final and destroys the scheduler at once; the destructor must
  // not free what the cancelling thread is still using to wake wait_idle().
  auto clock = std::make_shared<taskhive::ManualClock>();
  auto scheduler = std::make_unique<Scheduler>(taskhive::SchedulerOptions{.workers = 1, .clock = clock});
  // Waits for a retry that the manual clock never brings: in flight, and in no worker's hands.
  auto task = scheduler->submit([] { throw std::runtime_error("once"); },
                                {.retry = {.max_retries = 1, .initial_delay = 1h, .jitter = false}});
  while (task.state() != TaskState::retry_wait) std::this_thread::yield();

  taskhive::detail::seams::in_flight_drained = &hold_the_last_leave;
  std::thread canceller([&] { task.cancel(); });
  REQUIRE(last_task_leaving.wait_for_count(1));
  REQUIRE(task.wait() == TaskState::cancelled);
  scheduler_destroying = true;
  scheduler.reset();
  scheduler_destroyed = true;
  canceller.join();
  taskhive::detail::seams::in_flight_drained = nullptr;
  CHECK_FALSE(destroyed_under_the_last_task);
}

TEST_CASE("shutdown(cancel) racing a retry on its way back leaves every gauge at zero", "[shutdown][retry]") {
  // The timer brings a failed task back to the queue while shutdown(cancel) ends it from retry_wait.
  // Whichever wins, once shutdown() returns nothing may still count the task: the timer's side claims the
  // task before it counts it in the queue. (Each round races once; the rounds vary where the clock jump
  // lands.)
  for (int round = 0; round < 300; ++round) {
    auto clock = std::make_shared<taskhive::ManualClock>();
    Scheduler scheduler({.workers = 1, .clock = clock});
    auto task = scheduler.submit([] { throw std::runtime_error("once"); },
                                 {.retry = {.max_retries = 1, .initial_delay = 1s, .jitter = false}});
    while (task.state() != TaskState::retry_wait) std::this_thread::yield();
    std::atomic<bool> started{false};
    std::thread timer_side([&] {
      started = true;
      clock->advance(1s);
    });
    while (!started) std::this_thread::yield();
    for (int spin = 0; spin < round * 20; ++spin) std::atomic_signal_fence(std::memory_order_seq_cst);
    scheduler.shutdown(ShutdownMode::cancel);
    const auto m = scheduler.metrics();
    timer_side.join();
    INFO("round " << round << ": the task ended " << taskhive::to_string(task.state()));
    REQUIRE(m.queued == 0);
    REQUIRE(m.in_flight == 0);
    REQUIRE(m.retry_wait == 0);
    REQUIRE(m.finished() == m.submitted);
  }
}
