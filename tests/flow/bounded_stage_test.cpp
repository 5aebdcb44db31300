#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include "taskhive/flow.hpp"

using taskhive::BoundedStage;
using taskhive::StageOutput;
namespace flow = tbb::flow;

namespace {

// More threads than the stage lets in, on any machine: the stage's bound, not the thread count, must be what
// keeps items out, and bodies blocked by a test must leave threads to forward the rest.
constexpr int kThreads = 16;

/// Runs `fn` (which builds and runs a graph) in an arena of kThreads threads. oneTBB gives an arena no more
/// threads than the process-wide limit, hardware_concurrency by default, so the limit is raised first.
template <typename F>
void in_wide_arena(F&& fn) {
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, kThreads);
  tbb::task_arena arena(kThreads);
  arena.execute(fn);
}

// Where the stage's busy work leaves its result, so the compiler cannot drop the work.
thread_local volatile std::uint64_t work_result = 0;

void raise_to(std::atomic<std::int64_t>& target, std::int64_t value) {
  auto current = target.load();
  while (value > current && !target.compare_exchange_weak(current, value)) {
  }
}

/// A source of the integers 1..count.
flow::input_node<std::int64_t> counting_source(flow::graph& g, std::int64_t count,
                                               std::atomic<std::int64_t>& produced) {
  return flow::input_node<std::int64_t>(g, [&produced, count](tbb::flow_control& control) -> std::int64_t {
    if (produced.load() == count) {
      control.stop();
      return 0;
    }
    return ++produced;
  });
}

/// Holds stage bodies until the test lets them through, one at a time or all at once.
class Turnstile {
 public:
  void pass() {
    std::unique_lock lock(mutex_);
    ++waiting_;
    ++arrived_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_ || tickets_ > 0; });
    if (!open_) --tickets_;
    --waiting_;
    cv_.notify_all();
  }
  void let_through(int n = 1) {
    std::lock_guard lock(mutex_);
    tickets_ += n;
    cv_.notify_all();
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  /// Waits (up to a generous real-time bound) until exactly `n` bodies are held and `arrivals` have come.
  bool wait_for(int n, int arrivals) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(30),
                        [&] { return waiting_ == n && arrived_ == arrivals && tickets_ == 0; });
  }
  int arrived() {
    std::lock_guard lock(mutex_);
    return arrived_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int waiting_ = 0;
  int arrived_ = 0;
  int tickets_ = 0;
  bool open_ = false;
};

/// Polls `condition` (it is set by oneTBB threads we cannot signal from) up to a generous real-time bound.
template <typename F>
bool eventually(F condition) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

TEST_CASE("a fast source feeding a slow stage keeps max_in_flight items inside, memory bounded, none lost",
          "[flow][bounded_stage]") {
#if defined(__SANITIZE_ADDRESS__)
  // Under AddressSanitizer every flow-graph hop costs several times more; a fifth of the items keeps the run
  // short and exercises the same bound just as often per second.
  constexpr std::int64_t kItems = 200'000;
#else
  constexpr std::int64_t kItems = 1'000'000;
#endif
  constexpr std::int64_t kMaxInFlight = 8;
  std::atomic<std::int64_t> produced{0}, consumed{0}, sum{0}, most_produced_ahead{0};
  std::atomic<std::int64_t> inside{0}, most_inside{0};
  std::uint64_t failures = 1, dropped = 1;
  std::size_t peak = 0, left_inside = 1;

  in_wide_arena([&] {
    flow::graph g;
    flow::input_node<std::int64_t> source(g, [&](tbb::flow_control& control) -> std::int64_t {
      if (produced.load() == kItems) {
        control.stop();
        return 0;
      }
      // Items produced and not yet consumed: what the pipeline holds in memory.
      const auto n = ++produced;
      raise_to(most_produced_ahead, n - consumed.load());
      return n;
    });
    BoundedStage<std::int64_t, std::int64_t> slow(
        g, {.max_in_flight = kMaxInFlight}, [&](const std::int64_t& n, StageOutput<std::int64_t>& out) {
          raise_to(most_inside, ++inside);
          // Some real work, and for every fourth item a wait in the middle (as for I/O) that lets other items
          // into the stage: on a machine with fewer cores than max_in_flight it would rarely fill otherwise.
          std::uint64_t h = static_cast<std::uint64_t>(n);
          for (int i = 0; i < 200; ++i)
            h = (h ^ (h >> 31)) * 0x9e3779b97f4a7c15ULL + static_cast<unsigned>(i);
          if (n % 4 == 0) std::this_thread::yield();
          for (int i = 0; i < 200; ++i)
            h = (h ^ (h >> 31)) * 0x9e3779b97f4a7c15ULL + static_cast<unsigned>(i);
          work_result = h;
          --inside;
          out.emit(n);
        });
    // Lightweight, so it runs in the emitting thread and an item counts as consumed the moment the stage
    // emits it. oneTBB 2021 honours lightweight only for a noexcept body; otherwise it spawns a task per
    // item, and items waiting in those tasks would count as produced-ahead.
    flow::function_node<std::int64_t, flow::continue_msg, flow::lightweight> sink(
        g, flow::unlimited, [&](const std::int64_t& n) noexcept {
          sum += n;
          ++consumed;
          return flow::continue_msg{};
        });
    flow::make_edge(source, slow.input());
    flow::make_edge(slow.output(), sink);
    source.activate();
    g.wait_for_all();
    failures = slow.failures();
    dropped = slow.dropped_outputs();
    peak = slow.peak_in_flight();
    left_inside = slow.in_flight();
  });

  CHECK(consumed == kItems);
  CHECK(sum == kItems * (kItems + 1) / 2);
  CHECK(most_inside <= kMaxInFlight);
  CHECK(peak <= kMaxInFlight);
  CHECK(left_inside == 0);
  // In memory: the items in the stage and the one the source has made ahead (input_node caches one).
  CHECK(most_produced_ahead <= kMaxInFlight + 1);
  CHECK(failures == 0);
  CHECK(dropped == 0);
  UNSCOPED_INFO("most inside the stage at once: " << most_inside << ", most produced ahead of the sink: "
                                                  << most_produced_ahead);
  SUCCEED();
}

TEST_CASE("the limiter lets exactly max_in_flight items in, and one more for each that leaves",
          "[flow][bounded_stage]") {
  constexpr int kItems = 20;
  Turnstile turnstile;
  std::atomic<std::int64_t> produced{0}, done{0};
  std::size_t peak = 0;
  std::thread runner([&] {
    in_wide_arena([&] {
      flow::graph g;
      auto source = counting_source(g, kItems, produced);
      BoundedStage<std::int64_t, std::int64_t> stage(
          g, {.max_in_flight = 4},
          [&](const std::int64_t&, StageOutput<std::int64_t>&) { turnstile.pass(); });
      flow::function_node<std::int64_t> sink(g, flow::unlimited, [&](const std::int64_t&) { ++done; });
      flow::make_edge(source, stage.input());
      flow::make_edge(stage.output(), sink);
      source.activate();
      g.wait_for_all();
      peak = stage.peak_in_flight();
    });
  });
  REQUIRE(turnstile.wait_for(4, 4));
  for (int left = 1; left <= kItems - 4; ++left) {
    turnstile.let_through();
    REQUIRE(turnstile.wait_for(4, 4 + left));  // the item that left made room for exactly one
  }
  turnstile.open();
  runner.join();
  CHECK(peak == 4);
  CHECK(turnstile.arrived() == kItems);
}

TEST_CASE("a stage body emits zero, one or many outputs per item", "[flow][bounded_stage]") {
  constexpr std::int64_t kItems = 1000;
  std::atomic<std::int64_t> produced{0};
  std::mutex mutex;
  std::multiset<std::int64_t> received;
  std::uint64_t dropped = 1;

  in_wide_arena([&] {
    flow::graph g;
    auto source = counting_source(g, kItems, produced);
    // Item n emits n % 4 copies of itself: none for multiples of 4, three for n = 3, 7, 11, ...
    BoundedStage<std::int64_t, std::int64_t> fan_out(
        g, {.max_in_flight = 3, .concurrency = 2}, [](const std::int64_t& n, StageOutput<std::int64_t>& out) {
          for (std::int64_t i = 0; i < n % 4; ++i) out.emit(n);
        });
    flow::function_node<std::int64_t> sink(g, flow::serial, [&](const std::int64_t& n) {
      std::lock_guard lock(mutex);
      received.insert(n);
    });
    flow::make_edge(source, fan_out.input());
    flow::make_edge(fan_out.output(), sink);
    source.activate();
    g.wait_for_all();
    dropped = fan_out.dropped_outputs();
  });

  std::multiset<std::int64_t> expected;
  for (std::int64_t n = 1; n <= kItems; ++n)
    for (std::int64_t i = 0; i < n % 4; ++i) expected.insert(n);
  CHECK(received == expected);
  CHECK(dropped == 0);

  SECTION("an output no successor takes is counted as dropped") {
    std::atomic<std::int64_t> produced_alone{0};
    std::uint64_t dropped_alone = 0;
    flow::graph g;
    auto source = counting_source(g, 10, produced_alone);
    BoundedStage<std::int64_t, std::string> unconnected(
        g, {}, [](const std::int64_t& n, StageOutput<std::string>& out) { out.emit(std::to_string(n)); });
    flow::make_edge(source, unconnected.input());
    source.activate();
    g.wait_for_all();
    dropped_alone = unconnected.dropped_outputs();
    CHECK(dropped_alone == 10);
  }
}

TEST_CASE("a throwing body is counted, handed to the error handler, and the graph runs on",
          "[flow][bounded_stage]") {
  constexpr std::int64_t kItems = 1000;
  std::atomic<std::int64_t> produced{0}, passed{0};
  std::mutex mutex;
  std::vector<std::pair<std::int64_t, std::string>> errors;
  std::uint64_t failures = 0;
  std::size_t left_inside = 1;

  in_wide_arena([&] {
    flow::graph g;
    auto source = counting_source(g, kItems, produced);
    // With two permits, two items whose permits leaked would stall the whole graph.
    BoundedStage<std::int64_t, std::int64_t> picky(
        g, {.max_in_flight = 2},
        [](const std::int64_t& n, StageOutput<std::int64_t>& out) {
          if (n % 10 == 0) throw std::runtime_error("item " + std::to_string(n) + " is a multiple of 10");
          if (n % 77 == 0) throw 77;    // not a std::exception
          if (n % 5 == 0) out.emit(n);  // half of the multiples of 5 are emitted before the throw below
          if (n % 15 == 0) throw std::invalid_argument("a multiple of 15");
          if (n % 5 != 0) out.emit(n);
        },
        [&](const std::int64_t& n, std::exception_ptr error) {
          std::string what = "not a std::exception";
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          std::lock_guard lock(mutex);
          errors.emplace_back(n, what);
          if (n == 30) throw std::runtime_error("a handler that throws is logged, not fatal");
        });
    flow::function_node<std::int64_t> sink(g, flow::unlimited, [&](const std::int64_t&) { ++passed; });
    flow::make_edge(source, picky.input());
    flow::make_edge(picky.output(), sink);
    source.activate();
    g.wait_for_all();  // would rethrow an exception that reached oneTBB
    failures = picky.failures();
    left_inside = picky.in_flight();
  });

  std::int64_t expected_failures = 0, expected_passed = 0;
  for (std::int64_t n = 1; n <= kItems; ++n) {
    const bool fails = n % 10 == 0 || n % 77 == 0 || n % 15 == 0;
    expected_failures += fails;
    expected_passed += !fails || (n % 15 == 0 && n % 10 != 0 && n % 77 != 0);
  }
  CHECK(produced == kItems);
  CHECK(failures == static_cast<std::uint64_t>(expected_failures));
  CHECK(errors.size() == static_cast<std::size_t>(expected_failures));
  CHECK(passed == expected_passed);
  CHECK(left_inside == 0);
  std::lock_guard lock(mutex);
  for (const auto& [n, what] : errors) {
    if (n % 10 == 0) CHECK(what == "item " + std::to_string(n) + " is a multiple of 10");
  }
}

TEST_CASE("set_capacity holds permits back and gives them back", "[flow][bounded_stage]") {
  constexpr int kItems = 40;
  Turnstile turnstile;
  std::atomic<std::int64_t> produced{0};
  std::atomic<bool> shrunk{false};
  std::atomic<std::int64_t> inside{0}, most_inside_after_shrink{0};
  std::atomic<BoundedStage<std::int64_t, std::int64_t>*> stage_ptr{nullptr};
  std::thread runner([&] {
    in_wide_arena([&] {
      flow::graph g;
      auto source = counting_source(g, kItems, produced);
      BoundedStage<std::int64_t, std::int64_t> stage(g, {.max_in_flight = 8},
                                                     [&](const std::int64_t&, StageOutput<std::int64_t>&) {
                                                       const auto now = ++inside;
                                                       if (shrunk) raise_to(most_inside_after_shrink, now);
                                                       turnstile.pass();
                                                       --inside;
                                                     });
      stage_ptr = &stage;
      flow::make_edge(source, stage.input());
      source.activate();
      g.wait_for_all();
    });
  });
  REQUIRE(turnstile.wait_for(8, 8));
  auto& stage = *stage_ptr.load();

  SECTION("shrinking keeps the permits of items as they leave, then admits one per item that leaves") {
    stage.set_capacity(3);
    CHECK(stage.capacity() == 3);
    CHECK(stage.effective_capacity() == 8);  // eight items hold permits; none can be evicted
    for (int i = 1; i <= 5; ++i) {
      turnstile.let_through();
      REQUIRE(eventually([&] { return stage.in_flight() == static_cast<std::size_t>(8 - i); }));
      CHECK(stage.effective_capacity() == static_cast<std::size_t>(8 - i));
    }
    CHECK(turnstile.arrived() == 8);  // nothing came in while the five permits were kept
    shrunk = true;
    for (int i = 1; i <= 10; ++i) {
      turnstile.let_through();
      REQUIRE(turnstile.wait_for(3, 8 + i));
    }
    CHECK(most_inside_after_shrink == 3);

    SECTION("growing gives permits back at once") {
      stage.set_capacity(6);
      CHECK(stage.effective_capacity() == 6);
      REQUIRE(turnstile.wait_for(6, 21));
    }
    SECTION("growing before the shrink completes forgives permits not yet kept") {
      stage.set_capacity(1);  // wants 7 held back: 5 are, 2 more to take from leaving items
      turnstile.let_through();
      REQUIRE(eventually([&] { return stage.in_flight() == 2; }));
      stage.set_capacity(4);  // wants 4: forgives the one still owed, gives back 2 of the 6 held
      CHECK(stage.effective_capacity() == 4);
      REQUIRE(turnstile.wait_for(4, 20));
    }
  }
  SECTION("capacities outside 1..max_in_flight are refused") {
    CHECK_THROWS_AS(stage.set_capacity(0), std::out_of_range);
    CHECK_THROWS_AS(stage.set_capacity(9), std::out_of_range);
    CHECK(stage.capacity() == 8);
  }
  turnstile.open();
  runner.join();
  CHECK(produced == kItems);
  CHECK(inside == 0);
}

TEST_CASE("a stage built with an initial capacity lets in no more than that", "[flow][bounded_stage]") {
  constexpr int kItems = 12;
  Turnstile turnstile;
  std::atomic<std::int64_t> produced{0};
  std::size_t peak = 0;
  std::thread runner([&] {
    in_wide_arena([&] {
      flow::graph g;
      auto source = counting_source(g, kItems, produced);
      BoundedStage<std::int64_t, std::int64_t> stage(
          g, {.max_in_flight = 8, .initial_capacity = 3},
          [&](const std::int64_t&, StageOutput<std::int64_t>&) { turnstile.pass(); });
      flow::make_edge(source, stage.input());
      source.activate();
      g.wait_for_all();
      peak = stage.peak_in_flight();
    });
  });
  REQUIRE(turnstile.wait_for(3, 3));
  for (int left = 1; left <= kItems - 3; ++left) {
    turnstile.let_through();
    REQUIRE(turnstile.wait_for(3, 3 + left));
  }
  turnstile.open();
  runner.join();
  CHECK(peak == 3);

  flow::graph g;
  auto build = [&](taskhive::BoundedStageOptions options) {
    BoundedStage<int, int> stage(g, options, [](const int&, StageOutput<int>&) {});
  };
  CHECK_THROWS_AS(build({.max_in_flight = 0}), std::invalid_argument);
  CHECK_THROWS_AS(build({.max_in_flight = 2, .initial_capacity = 3}), std::invalid_argument);
  CHECK_THROWS_AS((BoundedStage<int, int>(g, {}, nullptr)), std::invalid_argument);
}

TEST_CASE("a stage of bounded concurrency shrinks at once down to its concurrency", "[flow][bounded_stage]") {
  Turnstile turnstile;
  std::atomic<std::int64_t> produced{0};
  std::atomic<BoundedStage<std::int64_t, std::int64_t>*> stage_ptr{nullptr};
  std::thread runner([&] {
    in_wide_arena([&] {
      flow::graph g;
      auto source = counting_source(g, 10, produced);
      BoundedStage<std::int64_t, std::int64_t> stage(
          g, {.max_in_flight = 8, .concurrency = 4},
          [&](const std::int64_t&, StageOutput<std::int64_t>&) { turnstile.pass(); });
      stage_ptr = &stage;
      flow::make_edge(source, stage.input());
      source.activate();
      g.wait_for_all();
    });
  });
  REQUIRE(turnstile.wait_for(4, 4));
  auto& stage = *stage_ptr.load();
  stage.set_capacity(2);
  // No more than four items can hold permits, so four of the eight are certainly free: held back at once.
  CHECK(stage.effective_capacity() == 4);
  for (int i = 1; i <= 2; ++i) {
    turnstile.let_through();
    REQUIRE(eventually([&] { return stage.in_flight() == static_cast<std::size_t>(4 - i); }));
  }
  CHECK(stage.effective_capacity() == 2);
  for (int i = 1; i <= 4; ++i) {
    turnstile.let_through();
    REQUIRE(turnstile.wait_for(2, 4 + i));
  }
  turnstile.open();
  runner.join();
  CHECK(produced == 10);
}
