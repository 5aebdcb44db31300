#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/epoch_clock.hpp"
#include "support/gate.hpp"
#include "taskhive/backpressure.hpp"
#include "taskhive/scheduler.hpp"

using namespace std::chrono_literals;
using taskhive::AdmissionConfig;
using taskhive::AdmissionController;
using taskhive::AdmissionResult;
using taskhive::ManualClock;
using taskhive::Scheduler;
using taskhive::ShutdownMode;
using taskhive::TaskContext;
using taskhive::TaskHandle;
using taskhive::TaskState;
using taskhive::test::Gate;
using taskhive::test::Signal;

namespace {

/// A controller on a manual clock, so cooldowns pass only when a test says so.
struct Fixture {
  explicit Fixture(AdmissionConfig config) : admission(config, clock) {}
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  AdmissionController admission;
};

/// Spins (yielding) until `done()` or a generous real-time bound; for states a test cannot be told about.
template <typename Pred>
bool eventually(Pred done, std::chrono::seconds bound = 30s) {
  const auto until = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

// --- the config --------------------------------------------------------------------------------------------

TEST_CASE("an inconsistent admission config is refused at construction", "[admission][backpressure]") {
  auto message = [](AdmissionConfig config) {
    try {
      AdmissionController controller(config);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(message({}) == "AdmissionConfig: max_load must be greater than 0 (it is 0)");
  CHECK(message({.max_load = -5}) == "AdmissionConfig: max_load must be greater than 0 (it is -5)");
  CHECK(message({.max_load = 100, .low_watermark = 101}) ==
        "AdmissionConfig: low_watermark must be between 1 and max_load 100 (it is 101)");
  CHECK(message({.max_load = 100, .low_watermark = 0}) ==
        "AdmissionConfig: low_watermark must be between 1 and max_load 100 (it is 0)");
  CHECK(message({.max_load = 100, .cooldown = -1s}) ==
        "AdmissionConfig: cooldown must not be negative (it is -1000000000 ns)");
  CHECK(message({.max_load = 100, .low_watermark = 100}) == "(accepted)");
  CHECK(message({.max_load = 1}) == "(accepted)");  // the default watermark is at least 1
}

// --- permits -----------------------------------------------------------------------------------------------

TEST_CASE("a refusal says the load, the weight and the limit", "[admission][backpressure]") {
  Fixture f({.max_load = 100});
  auto held = f.admission.try_acquire(90);
  REQUIRE(held);
  auto refused = f.admission.try_acquire(20);
  CHECK_FALSE(refused);
  CHECK_FALSE(refused.admitted());
  CHECK(refused.error() == "overloaded: load 90 + 20 > max 100");
  CHECK_THROWS_AS(refused.value(), std::logic_error);
  CHECK(held.error().empty());
}

TEST_CASE("work heavier than max_load on its own gets its own message and starts no cooldown",
          "[admission][backpressure]") {
  Fixture f({.max_load = 100, .cooldown = 10s});
  auto refused = f.admission.try_acquire(150);
  CHECK(refused.error() ==
        "refused: a load of 150 exceeds max_load 100 on its own, so it can never be admitted; split the work "
        "or raise max_load");
  CHECK(f.admission.stats().rejected == 1);
  CHECK_FALSE(f.admission.cooling_down());
  CHECK(f.admission.try_acquire(100));  // exactly max_load fits
}

TEST_CASE("a permit holds its load until it ends, and releases it exactly once",
          "[admission][backpressure]") {
  Fixture f({.max_load = 100});
  auto& admission = f.admission;

  SECTION("on scope exit") {
    {
      auto permit = admission.try_acquire(30);
      REQUIRE(permit);
      CHECK(permit.value().held());
      CHECK(permit.value().load() == 30);
      CHECK(admission.load() == 30);
      CHECK(admission.stats().in_flight == 1);
    }
    CHECK(admission.load() == 0);
    CHECK(admission.stats().in_flight == 0);
  }
  SECTION("on release(), and not again on destruction") {
    auto other = admission.try_acquire(10);
    {
      auto permit = admission.try_acquire(30).value();
      permit.release();
      CHECK_FALSE(permit.held());
      CHECK(permit.load() == 0);
      CHECK(admission.load() == 10);
      permit.release();
      CHECK(admission.load() == 10);
    }
    CHECK(admission.load() == 10);  // the released permit's destructor took nothing more
  }
  SECTION("when moved: the load moves with it and is released once") {
    AdmissionController::Permit outer;
    CHECK_FALSE(outer.held());
    {
      auto permit = admission.try_acquire(30).value();
      AdmissionController::Permit moved(std::move(permit));
      CHECK_FALSE(permit.held());  // NOLINT: checking the moved-from state is the point
      CHECK(moved.held());
      outer = std::move(moved);
    }
    CHECK(admission.load() == 30);
    CHECK(admission.stats().in_flight == 1);
    outer = AdmissionController::Permit();  // assigning over a held permit releases it
    CHECK(admission.load() == 0);
    CHECK(admission.stats().in_flight == 0);
  }
  SECTION("when move-assigned over another permit: the overwritten one is released") {
    auto a = admission.try_acquire(30).value();
    auto b = admission.try_acquire(20).value();
    CHECK(admission.load() == 50);
    a = std::move(b);
    CHECK(admission.load() == 20);
    CHECK(a.load() == 20);
  }
  SECTION("when the work throws") {
    try {
      auto permit = admission.try_acquire(30);
      throw std::runtime_error("work failed");
    } catch (const std::runtime_error&) {
    }
    CHECK(admission.load() == 0);
  }
  CHECK(admission.stats().peak_load >= 30);
}

TEST_CASE("the controller counts admissions, refusals and the peak load", "[admission][backpressure]") {
  Fixture f({.max_load = 100, .cooldown = 0s, .low_watermark = 100});
  auto a = f.admission.try_acquire(60);
  auto b = f.admission.try_acquire(30);
  auto refused = f.admission.try_acquire(20);
  CHECK_FALSE(f.admission.last_rejection() == std::nullopt);
  CHECK(*f.admission.last_rejection() == f.clock->now());
  b.value().release();
  auto stats = f.admission.stats();
  CHECK(stats.load == 60);
  CHECK(stats.peak_load == 90);
  CHECK(stats.limit == 100);
  CHECK(stats.in_flight == 1);
  CHECK(stats.accepted == 2);
  CHECK(stats.rejected == 1);
}

TEST_CASE("should_reject answers as try_acquire would, without acquiring or counting",
          "[admission][backpressure]") {
  Fixture f({.max_load = 100, .cooldown = 5s});
  CHECK_FALSE(f.admission.last_rejection());
  auto held = f.admission.try_acquire(90);
  CHECK_FALSE(f.admission.should_reject(10));
  CHECK(f.admission.should_reject(11));
  CHECK(f.admission.should_reject(101));
  CHECK(f.admission.load() == 90);
  CHECK(f.admission.stats().accepted == 1);
  CHECK(f.admission.stats().rejected == 0);
  CHECK_FALSE(f.admission.cooling_down());  // asking is not a rejection
  CHECK_FALSE(f.admission.last_rejection());

  CHECK_FALSE(f.admission.try_acquire(11));  // now a real rejection: cooling down
  held.value().release();
  CHECK(f.admission.should_reject(1));
  f.clock->advance(5s);
  CHECK_FALSE(f.admission.should_reject(1));
}

TEST_CASE("execute_with_backpressure runs the work under a permit, or refuses without running it",
          "[admission][backpressure]") {
  Fixture f({.max_load = 100});
  auto& admission = f.admission;

  SECTION("admitted: the work runs holding its load, and its result comes back") {
    auto result = admission.execute_with_backpressure(20, [&] { return admission.load(); });
    REQUIRE(result);
    CHECK(result.value() == 20);
    CHECK(admission.load() == 0);
  }
  SECTION("work that returns nothing") {
    int runs = 0;
    AdmissionResult<void> result = admission.execute_with_backpressure(20, [&] { ++runs; });
    CHECK(result);
    CHECK(result.error().empty());
    CHECK(runs == 1);
  }
  SECTION("refused: the work does not run, and the reason comes back") {
    auto held = admission.try_acquire(90);
    int runs = 0;
    auto result = admission.execute_with_backpressure(20, [&] {
      ++runs;
      return std::string("ran");
    });
    CHECK_FALSE(result);
    CHECK(result.error() == "overloaded: load 90 + 20 > max 100");
    CHECK(runs == 0);
    CHECK(admission.load() == 90);
  }
  SECTION("the work throws: the load is released and the exception reaches the caller") {
    CHECK_THROWS_WITH(
        admission.execute_with_backpressure(20, []() -> int { throw std::runtime_error("boom"); }), "boom");
    CHECK(admission.load() == 0);
    CHECK(admission.stats().in_flight == 0);
  }
}

TEST_CASE("with admission disabled everything is admitted, and load and peak are still tracked",
          "[admission][backpressure]") {
  Fixture f({.enabled = false, .max_load = 100});
  auto a = f.admission.try_acquire(90);
  auto b = f.admission.try_acquire(200);
  CHECK(a);
  CHECK(b);
  CHECK_FALSE(f.admission.should_reject(1000));
  CHECK(f.admission.load() == 290);
  a.value().release();
  b.value().release();
  auto stats = f.admission.stats();
  CHECK(stats.load == 0);
  CHECK(stats.peak_load == 290);
  CHECK(stats.accepted == 2);
  CHECK(stats.rejected == 0);
}

// --- hysteresis --------------------------------------------------------------------------------------------

TEST_CASE(
    "after a rejection, work is refused until the cooldown has elapsed and the load is below the low "
    "watermark",
    "[admission][backpressure][hysteresis]") {
  Fixture f({.max_load = 100, .cooldown = 5s, .low_watermark = 50});
  auto& admission = f.admission;

  SECTION("the load alone falling does not end the cooldown") {
    auto held = admission.try_acquire(90);
    CHECK_FALSE(admission.try_acquire(20));
    CHECK(admission.cooling_down());
    held.value().release();  // load 0: far below the watermark
    auto refused = admission.try_acquire(1);
    CHECK(refused.error() == "overloaded: cooling down for 5 s more after a rejection (load 0)");
    f.clock->advance(1800ms);
    CHECK(admission.try_acquire(1).error() ==
          "overloaded: cooling down for 3.2 s more after a rejection (load 0)");
    f.clock->advance(3199ms);
    CHECK_FALSE(admission.try_acquire(1));
    f.clock->advance(1ms);
    CHECK(admission.try_acquire(1));
    CHECK_FALSE(admission.cooling_down());  // the first admission ended it
  }
  SECTION("the cooldown alone elapsing does not end it while the load is at or above the watermark") {
    auto a = admission.try_acquire(49);
    auto b = admission.try_acquire(1);
    auto c = admission.try_acquire(40);
    CHECK_FALSE(admission.try_acquire(20));
    CHECK(admission.try_acquire(1).error() ==
          "overloaded: cooling down for 5 s more after a rejection (load 90, resumes below 50)");
    f.clock->advance(1h);
    CHECK(admission.try_acquire(1).error() ==
          "overloaded: load 90 must fall below 50 before new work is admitted again (cooling down since a "
          "rejection 3600 s ago)");
    c.value().release();  // load 50: not below 50
    CHECK_FALSE(admission.try_acquire(1));
    CHECK(admission.should_reject(1));
    b.value().release();  // load 49
    CHECK_FALSE(admission.should_reject(1));
    CHECK(admission.try_acquire(1));
  }
  SECTION("refusals during the cooldown do not extend it") {
    auto held = admission.try_acquire(90);
    CHECK_FALSE(admission.try_acquire(20));
    held.value().release();
    for (int i = 0; i < 4; ++i) {
      f.clock->advance(1s);
      CHECK_FALSE(admission.try_acquire(1));  // each one a refusal...
    }
    f.clock->advance(1s);
    CHECK(admission.try_acquire(1));  // ...yet it ends 5 s after the rejection that started it
    CHECK(admission.stats().rejected == 5);
    CHECK(*admission.last_rejection() == f.clock->now() - 1s);
  }
  SECTION("once admission resumes, the next rejection starts a new cooldown") {
    auto held = admission.try_acquire(90);
    CHECK_FALSE(admission.try_acquire(20));
    held.value().release();
    f.clock->advance(5s);
    auto again = admission.try_acquire(95);
    REQUIRE(again);
    CHECK_FALSE(admission.try_acquire(10));
    again.value().release();
    CHECK(admission.try_acquire(1).error() ==
          "overloaded: cooling down for 5 s more after a rejection (load 0)");
  }
  SECTION("without a rejection the watermark plays no part") {
    auto held = admission.try_acquire(90);
    CHECK(admission.try_acquire(10));  // load 90, far above 50, and admitted: nothing was refused yet
  }
}

TEST_CASE("a zero cooldown leaves the low watermark as the only hysteresis",
          "[admission][backpressure][hysteresis]") {
  Fixture f({.max_load = 10, .cooldown = 0s});  // default watermark: 5
  auto a = f.admission.try_acquire(6);
  auto b = f.admission.try_acquire(4);
  CHECK_FALSE(f.admission.try_acquire(1));
  b.value().release();  // load 6: room for 4 more, but not below the watermark
  CHECK(f.admission.try_acquire(1).error() ==
        "overloaded: load 6 must fall below 5 before new work is admitted again (cooling down since a "
        "rejection 0 µs ago)");
  a.value().release();
  CHECK(f.admission.try_acquire(1));
}

TEST_CASE("a cooldown of nanoseconds::max() lasts, rather than wrapping into the past",
          "[admission][backpressure][hysteresis]") {
  auto clock = std::make_shared<ManualClock>();
  clock->advance(24h * 365 * 200);  // far into the clock's epoch: now + a century overflows int64 ns
  const auto cooldown = GENERATE(std::chrono::nanoseconds::max(), std::chrono::nanoseconds(24h * 365 * 100));
  AdmissionController admission({.max_load = 10, .cooldown = cooldown, .low_watermark = 5}, clock);
  auto all = admission.try_acquire(10);
  CHECK_FALSE(admission.try_acquire(1));  // starts the cooldown
  all.value().release();
  clock->advance(1h);
  const auto later = admission.try_acquire(1);
  CHECK_FALSE(later);
  CHECK(later.error().rfind("overloaded: cooling down for ", 0) == 0);
}

TEST_CASE("a rejection at the clock's epoch starts the hysteresis like any other",
          "[admission][backpressure][hysteresis]") {
  auto clock = std::make_shared<taskhive::test::EpochClock>();  // reads 0
  AdmissionController admission({.max_load = 10, .cooldown = 0s, .low_watermark = 2}, clock);
  auto most = admission.try_acquire(9);
  CHECK_FALSE(admission.try_acquire(5));
  CHECK(admission.cooling_down());
  REQUIRE(admission.last_rejection());
  CHECK(admission.last_rejection()->time_since_epoch().count() == 0);
  CHECK_FALSE(admission.try_acquire(1));  // load 9 is not below the watermark 2
  most.value().release();
  CHECK(admission.try_acquire(1));
}

// --- concurrency -------------------------------------------------------------------------------------------

TEST_CASE("under concurrent acquire and release the load never exceeds max_load and returns to 0",
          "[admission][backpressure][concurrency]") {
  constexpr std::int64_t kMax = 1000;
  constexpr int kThreads = 8;
  constexpr int kOps = 100'000;
  auto clock = std::make_shared<ManualClock>();  // never advanced: a zero cooldown, the watermark decides
  AdmissionController admission({.max_load = kMax, .cooldown = 0s, .low_watermark = kMax / 2}, clock);

  std::atomic<std::int64_t> max_seen{0};
  std::atomic<std::uint64_t> acquired{0}, refused{0}, refused_without_reason{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1u);
      std::uniform_int_distribution<std::uint32_t> weight(0, kMax / 10);
      std::vector<AdmissionController::Permit> held;  // a few at a time, so the load builds up
      std::vector<std::uint32_t> policy_held;         // odd threads also use the scheduler's interface
      std::int64_t local_max = 0;
      std::uint64_t ok = 0, no = 0, no_reason = 0;
      for (int i = 0; i < kOps; ++i) {
        const auto w = weight(rng);
        bool admitted = false;
        if (t % 2 == 1 && i % 2 == 1) {
          auto refusal = admission.try_admit(w);
          admitted = !refusal;
          if (admitted) {
            policy_held.push_back(w);
          } else if (refusal->empty()) {
            ++no_reason;
          }
        } else {
          auto permit = admission.try_acquire(w);
          admitted = permit.admitted();
          if (admitted) {
            held.push_back(std::move(permit).value());
          } else if (permit.error().empty()) {
            ++no_reason;
          }
        }
        if (admitted) {
          ++ok;
          local_max = std::max(local_max, admission.load());
        } else {
          ++no;
        }
        if (held.size() > 4 || (!held.empty() && rng() % 3 == 0)) held.erase(held.begin());
        if (policy_held.size() > 4 || (!policy_held.empty() && rng() % 3 == 0)) {
          admission.release(policy_held.front(), TaskState::succeeded, 0ns);
          policy_held.erase(policy_held.begin());
        }
      }
      held.clear();
      for (auto w : policy_held) admission.release(w, TaskState::succeeded, 0ns);
      acquired += ok;
      refused += no;
      refused_without_reason += no_reason;
      auto seen = max_seen.load();
      while (local_max > seen && !max_seen.compare_exchange_weak(seen, local_max)) {
      }
    });
  }
  for (auto& thread : threads) thread.join();

  const auto stats = admission.stats();
  CHECK(max_seen.load() <= kMax);
  CHECK(stats.peak_load <= kMax);
  CHECK(stats.peak_load >= max_seen.load());
  CHECK(stats.load == 0);
  CHECK(stats.in_flight == 0);
  CHECK(stats.accepted + stats.rejected == std::uint64_t{kThreads} * kOps);
  CHECK(stats.accepted == acquired.load());
  CHECK(stats.rejected == refused.load());
  CHECK(refused_without_reason.load() == 0);
  CHECK(refused.load() > 0);  // the test did push the controller into overload
  CHECK(acquired.load() > 0);
}

// --- with a scheduler --------------------------------------------------------------------------------------

TEST_CASE("a submit the controller refuses ends rejected with the overloaded message",
          "[admission][backpressure]") {
  auto clock = std::make_shared<ManualClock>();  // the controller's only: the cooldown stays put
  auto admission =
      std::make_shared<AdmissionController>(AdmissionConfig{.max_load = 100, .cooldown = 1s}, clock);
  Scheduler scheduler({.workers = 1, .admission = admission});
  Gate gate;
  auto holder = scheduler.submit([&] { gate.wait(); }, {.load = 90});
  REQUIRE(gate.wait_for_waiters(1));

  auto refused = scheduler.try_submit([] {}, {.name = "extra", .load = 20});
  CHECK(refused.state() == TaskState::rejected);
  CHECK(refused.error() == "overloaded: load 90 + 20 > max 100");
  // Admission does not wait: even the blocking submit is refused at once.
  auto blocking = scheduler.submit([] {}, {.load = 1});
  CHECK(blocking.state() == TaskState::rejected);
  CHECK(blocking.error() ==
        "overloaded: cooling down for 1 s more after a rejection (load 90, resumes below 50)");

  gate.open();
  CHECK(holder.wait() == TaskState::succeeded);
  scheduler.wait_idle();
  const auto m = scheduler.metrics();
  REQUIRE(m.admission);
  CHECK(m.admission->limit == 100);
  CHECK(m.admission->accepted == 1);
  CHECK(m.admission->rejected == 2);
  CHECK(m.admission->load == 0);
  CHECK(m.rejected == 2);
}

TEST_CASE("a task's load is held from submit to its final state, and no load leaks however tasks end",
          "[admission][backpressure]") {
  auto clock = std::make_shared<ManualClock>();
  // No cooldown and a watermark at the limit: the one deliberate rejection below leaves no hysteresis behind.
  auto admission = std::make_shared<AdmissionController>(
      AdmissionConfig{.max_load = 1000, .cooldown = 0s, .low_watermark = 1000}, clock);
  Scheduler scheduler({.workers = 1, .clock = clock, .admission = admission});
  std::vector<TaskHandle> handles;
  auto submit = [&](auto fn, taskhive::TaskOptions options) {
    handles.push_back(scheduler.submit(std::move(fn), std::move(options)));
    return handles.back();
  };

  SECTION("succeeded, cancelled while queued, timed out while queued, retries exhausted") {
    Gate gate;
    auto blocker = submit([&] { gate.wait(); }, {.load = 5});
    REQUIRE(gate.wait_for_waiters(1));
    auto cancelled = submit([] {}, {.load = 7});
    auto timed_out = submit([] {}, {.timeout = 1s, .load = 11});
    auto exhausted = submit([] { throw std::runtime_error("no"); },
                            {.retry = {.max_retries = 2, .initial_delay = 1ms, .jitter = false}, .load = 13});
    CHECK(admission->load() == 5 + 7 + 11 + 13);
    CHECK(admission->stats().in_flight == 4);

    CHECK(cancelled.cancel());
    CHECK(cancelled.state() == TaskState::cancelled);
    CHECK(admission->load() == 5 + 11 + 13);  // released at the final state, not later
    clock->advance(1s);
    CHECK(timed_out.wait() == TaskState::timed_out);
    CHECK(admission->load() == 5 + 13);
    gate.open();
    CHECK(blocker.wait() == TaskState::succeeded);
    std::thread advancer([&] {  // the retries' backoffs wait on the manual clock
      while (!exhausted.done()) {
        clock->advance(1ms);
        std::this_thread::yield();
      }
    });
    CHECK(exhausted.wait() == TaskState::failed);
    advancer.join();
    CHECK(exhausted.attempts() == 3);
  }
  SECTION("shutdown(cancel) with a task running, tasks queued, one waiting to retry, and one refused") {
    auto retrying = submit([] { throw std::runtime_error("flaky"); },
                           {.retry = {.max_retries = 5, .initial_delay = 1h, .jitter = false}, .load = 3});
    REQUIRE(eventually([&] { return retrying.state() == TaskState::retry_wait; }));
    Signal started;
    auto running = submit(
        [&](TaskContext& ctx) {
          started.notify();
          while (!ctx.cancellation_requested()) std::this_thread::yield();
          ctx.throw_if_cancelled();
        },
        {.load = 100});
    REQUIRE(started.wait_for_count(1));
    for (int i = 0; i < 20; ++i) submit([] {}, {.load = 40});
    CHECK(admission->load() == 3 + 100 + 20 * 40);

    auto refused = scheduler.try_submit([] {}, {.load = 200});
    CHECK(refused.error() == "overloaded: load 903 + 200 > max 1000");

    scheduler.shutdown(ShutdownMode::cancel);
    CHECK(retrying.state() == TaskState::cancelled);
    CHECK(running.state() == TaskState::cancelled);
    for (auto& h : handles) CHECK(h.state() == TaskState::cancelled);
    CHECK(admission->stats().rejected == 1);
    CHECK(admission->stats().peak_load == 903);
  }

  scheduler.wait_idle();
  const auto stats = admission->stats();
  CHECK(stats.load == 0);
  CHECK(stats.in_flight == 0);
  CHECK(stats.accepted == handles.size());
  CHECK(scheduler.metrics().submitted == handles.size());
}

TEST_CASE("a task admitted but refused a queue slot gives its load back at once",
          "[admission][backpressure]") {
  auto admission = std::make_shared<AdmissionController>(AdmissionConfig{.max_load = 100});
  Scheduler scheduler({.workers = 1, .queue_capacity = 1, .admission = admission});
  Gate gate;
  auto running = scheduler.submit([&] { gate.wait(); }, {.load = 10});
  REQUIRE(gate.wait_for_waiters(1));
  auto queued = scheduler.submit([] {}, {.load = 10});  // takes the one queue slot

  auto no_room = scheduler.try_submit([] {}, {.load = 10});
  CHECK(no_room.state() == TaskState::rejected);
  CHECK(no_room.error().rfind("queue full: ", 0) == 0);
  CHECK(admission->load() == 20);
  // The controller did admit it (the queue refused it), so it counts among the controller's accepted, not its
  // rejected; the scheduler counts it rejected.
  CHECK(admission->stats().accepted == 3);
  CHECK(admission->stats().rejected == 0);
  CHECK(scheduler.metrics().rejected == 1);

  gate.open();
  scheduler.wait_idle();
  CHECK(admission->load() == 0);
  CHECK(admission->stats().in_flight == 0);
}
