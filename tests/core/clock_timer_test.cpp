#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "support/epoch_clock.hpp"
#include "support/gate.hpp"
#include "support/impatient_clock.hpp"
#include "taskhive/clock.hpp"
#include "taskhive/timer.hpp"

using namespace std::chrono_literals;
using taskhive::ManualClock;
using taskhive::Timer;
using taskhive::test::Signal;

TEST_CASE("a manual clock moves only when told, and never backwards", "[clock]") {
  ManualClock clock;
  const auto start = clock.now();
  CHECK(clock.now() == start);
  clock.advance(5s);
  CHECK(clock.now() == start + 5s);
  clock.advance(-3s);
  CHECK(clock.now() == start + 5s);
  clock.set(start);
  CHECK(clock.now() == start + 5s);
  clock.set(start + 10s);
  CHECK(clock.now() == start + 10s);
  clock.advance(std::chrono::nanoseconds::max());  // saturates: a wrapped sum would go far back
  CHECK(clock.now() == ManualClock::time_point::max());
  clock.advance(1s);
  CHECK(clock.now() == ManualClock::time_point::max());
}

TEST_CASE("a timer on a clock that reads before its epoch still fires", "[timer][clock]") {
  // A steady clock shifted back a century reads negative; max() - now then overflowed, every due time
  // saturated to "never", and retries never came back.
  auto clock = std::make_shared<taskhive::test::EpochClock>();
  clock->ns = -3'000'000'000'000'000'000;
  Timer timer(clock);
  Signal fired;
  timer.schedule_after(10ms, [&] { fired.notify(); });
  clock->ns += 1'000'000'000;  // EpochClock's waiters poll it
  CHECK(fired.wait_for_count(1));
}

TEST_CASE("a timer on a manual clock fires exactly when time reaches the due time", "[timer]") {
  auto clock = std::make_shared<ManualClock>();
  Timer timer(clock);
  Signal fired;
  timer.schedule_after(10s, [&] { fired.notify(); });
  CHECK(timer.pending() == 1);

  clock->advance(9s);
  // The timer thread has been woken by the jump; it must go back to waiting, not fire.
  CHECK_FALSE(fired.wait_for_count(1, std::chrono::seconds(0)));
  CHECK(timer.pending() == 1);

  clock->advance(1s);
  REQUIRE(fired.wait_for_count(1));
  CHECK(timer.pending() == 0);
}

TEST_CASE("a delay of nanoseconds::max() means never, not a due time wrapped into the past", "[timer]") {
  auto clock = std::make_shared<ManualClock>();
  Timer timer(clock);
  std::atomic<bool> never_fired{false};
  Signal sentinel;
  timer.schedule_after(std::chrono::nanoseconds::max(), [&] { never_fired = true; });
  timer.schedule_after(1h, [&] { sentinel.notify(); });
  clock->advance(1h);
  // Callbacks run in due order: one due in the past would have run before the sentinel.
  REQUIRE(sentinel.wait_for_count(1));
  CHECK_FALSE(never_fired.load());
  CHECK(timer.pending() == 1);
}

TEST_CASE("a timer runs callbacks in due order, ties in scheduling order", "[timer]") {
  auto clock = std::make_shared<ManualClock>();
  Timer timer(clock);
  std::mutex mutex;
  std::vector<int> order;
  Signal done;
  auto record = [&](int id) {
    return [&, id] {
      std::lock_guard lock(mutex);
      order.push_back(id);
      done.notify();
    };
  };
  timer.schedule_after(3s, record(3));
  timer.schedule_after(1s, record(1));
  timer.schedule_after(2s, record(20));
  timer.schedule_after(2s, record(21));
  clock->advance(5s);
  REQUIRE(done.wait_for_count(4));
  std::lock_guard lock(mutex);
  CHECK(order == std::vector<int>{1, 20, 21, 3});
}

TEST_CASE("a cancelled timer callback never runs", "[timer]") {
  auto clock = std::make_shared<ManualClock>();
  Timer timer(clock);
  std::atomic<int> cancelled_ran{0};
  Signal later;
  const auto id = timer.schedule_after(1s, [&] { cancelled_ran++; });
  timer.schedule_after(2s, [&] { later.notify(); });
  CHECK(timer.cancel(id));
  CHECK_FALSE(timer.cancel(id));
  CHECK_FALSE(timer.cancel(9999));
  clock->advance(3s);
  REQUIRE(later.wait_for_count(1));
  CHECK(cancelled_ran == 0);
}

TEST_CASE("a timer survives a callback that throws", "[timer]") {
  auto clock = std::make_shared<ManualClock>();
  Timer timer(clock);
  Signal after;
  timer.schedule_after(1s, [] { throw std::runtime_error("boom"); });
  timer.schedule_after(1s, [] { throw 42; });
  timer.schedule_after(2s, [&] { after.notify(); });
  clock->advance(2s);
  CHECK(after.wait_for_count(1));
}

TEST_CASE("a timer on the steady clock fires after a real delay", "[timer]") {
  Timer timer;
  Signal fired;
  const auto start = std::chrono::steady_clock::now();
  timer.schedule_after(20ms, [&] { fired.notify(); });
  REQUIRE(fired.wait_for_count(1));
  CHECK(std::chrono::steady_clock::now() - start >= 20ms);
}

TEST_CASE("destroying a timer discards callbacks that have not run", "[timer]") {
  auto clock = std::make_shared<ManualClock>();
  std::atomic<int> ran{0};
  {
    Timer timer(clock);
    timer.schedule_after(1s, [&] { ran++; });
  }
  clock->advance(2s);
  CHECK(ran == 0);
}

TEST_CASE("a timer whose clock never blocks in wait_until still lets others schedule and cancel", "[timer]") {
  auto clock = std::make_shared<taskhive::test::ImpatientClock>();
  Timer timer(clock);
  timer.schedule_after(1h, [] {});  // the timer thread spins on its clock until then
  while (clock->waits.load() == 0) std::this_thread::yield();  // it is spinning now
  for (int i = 0; i < 100; ++i) CHECK(timer.cancel(timer.schedule_after(1h, [] {})));
  CHECK(timer.pending() == 1);
}

TEST_CASE("a timer with a null clock uses the steady clock", "[timer]") {
  Timer timer(nullptr);
  CHECK(timer.clock() == taskhive::Clock::steady());
  Signal fired;
  timer.schedule_after(1ms, [&] { fired.notify(); });
  CHECK(fired.wait_for_count(1));
}

TEST_CASE("a timer callback may destroy its own timer", "[timer]") {
  auto timer = std::make_unique<Timer>();
  Signal destroyed;
  timer->schedule_after(0ns, [&] {
    timer.reset();  // used to join its own thread: std::system_error in a noexcept destructor, terminate
    destroyed.notify();
  });
  REQUIRE(destroyed.wait_for_count(1));
  CHECK(timer == nullptr);
}
