#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <queue>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/gate.hpp"
#include "taskhive/adaptive_limit.hpp"
#include "taskhive/flow.hpp"
#include "taskhive/scheduler.hpp"

using namespace std::chrono_literals;
using taskhive::AdaptiveLimiter;
using taskhive::AimdLimit;
using taskhive::Gradient2Config;
using taskhive::Gradient2Limit;
using taskhive::LimitAlgorithm;
using taskhive::LimitSample;
using taskhive::TaskState;

namespace {

/// A limit that never moves: the baseline an adaptive limit is compared with.
class FixedLimit final : public LimitAlgorithm {
 public:
  explicit FixedLimit(std::size_t limit) : limit_(limit) {}
  std::size_t update(const LimitSample&) override { return limit_; }
  std::size_t limit() const override { return limit_; }

 private:
  std::size_t limit_;
};

// --- A simulated service, in virtual time
// --------------------------------------------------------------------
//
// A discrete-event simulation: no threads, no clock. Closed-loop clients each send a request, wait for the
// answer and send the next at once; a refused client retries after 0.5-1.5 ms. The service answers in `base`
// while at most `knee` requests are inside it, and in base x concurrency / knee beyond that (queueing): past
// the knee more concurrency buys no throughput, only latency.

using VirtualTime = std::int64_t;  // nanoseconds since the start
constexpr VirtualTime kMs = 1'000'000;
constexpr VirtualTime kSecond = 1'000 * kMs;
constexpr VirtualTime kBaseLatency = 1 * kMs;
constexpr int kClients = 200;
constexpr int kKnee = 32;

/// The service's knee from `until` on backwards: phases in time order, the last one lasting to the end.
struct Phase {
  VirtualTime until;
  int knee;
};

/// What happened in one window of virtual time.
struct Window {
  VirtualTime from, to;
  std::size_t min_limit = SIZE_MAX, max_limit = 0;
  std::vector<VirtualTime> latencies{};  // of admitted requests that completed in the window
  std::uint64_t refused = 0;

  VirtualTime percentile(double q) {
    if (latencies.empty()) return 0;
    std::sort(latencies.begin(), latencies.end());
    auto rank = static_cast<std::size_t>(q * static_cast<double>(latencies.size()));
    return latencies[std::min(rank, latencies.size() - 1)];
  }
};

void simulate(AdaptiveLimiter& limiter, const std::vector<Phase>& phases, std::vector<Window>& windows) {
  struct Event {
    VirtualTime at;
    std::uint64_t sequence;  // ties in time are taken in creation order: deterministic
    int client;
    VirtualTime latency;  // > 0: a completion
  };
  auto later = [](const Event& a, const Event& b) {
    return a.at != b.at ? a.at > b.at : a.sequence > b.sequence;
  };
  std::priority_queue<Event, std::vector<Event>, decltype(later)> events(later);
  std::mt19937_64 random(20261128);  // fixed seed: the same run every time, on every platform
  std::uint64_t sequence = 0;
  for (int c = 0; c < kClients; ++c)
    events.push({static_cast<VirtualTime>(random() % kMs), sequence++, c, 0});

  const VirtualTime end = phases.back().until;
  int in_service = 0;
  while (!events.empty() && events.top().at < end) {
    const Event e = events.top();
    events.pop();
    auto phase = std::find_if(phases.begin(), phases.end(), [&](const Phase& p) { return e.at < p.until; });
    if (e.latency > 0) {  // a completion: report it, and the client sends its next request now
      --in_service;
      limiter.release(1, TaskState::succeeded, std::chrono::nanoseconds(e.latency));
      for (auto& w : windows)
        if (e.at >= w.from && e.at < w.to) w.latencies.push_back(e.latency);
      events.push({e.at, sequence++, e.client, 0});
    } else if (!limiter.try_admit(1)) {
      ++in_service;
      const VirtualTime latency =
          in_service <= phase->knee ? kBaseLatency : kBaseLatency * in_service / phase->knee;
      events.push({e.at + latency, sequence++, e.client, latency});
    } else {
      for (auto& w : windows)
        if (e.at >= w.from && e.at < w.to) ++w.refused;
      events.push({e.at + kMs / 2 + static_cast<VirtualTime>(random() % kMs), sequence++, e.client, 0});
    }
    for (auto& w : windows) {
      if (e.at >= w.from && e.at < w.to) {
        w.min_limit = std::min(w.min_limit, limiter.limit());
        w.max_limit = std::max(w.max_limit, limiter.limit());
      }
    }
  }
}

std::unique_ptr<Gradient2Limit> gradient2(Gradient2Config config = {}) {
  return std::make_unique<Gradient2Limit>(std::move(config));
}

}  // namespace

// --- the algorithms' arithmetic
// ------------------------------------------------------------------------------

TEST_CASE("AIMD adds one per success while busy and takes 10% per drop", "[adaptive][aimd]") {
  AimdLimit aimd({.initial_limit = 10, .min_limit = 4, .max_limit = 100});
  CHECK(aimd.limit() == 10);
  CHECK(aimd.update({.rtt = 1ms, .in_flight = 10}) == 11);  // busy: in flight reached the limit
  CHECK(aimd.update({.rtt = 1ms, .in_flight = 5}) == 11);   // not busy: no evidence more would help
  CHECK(aimd.update({.rtt = 1ms, .in_flight = 11, .dropped = true}) == 9);  // 11 x 0.9 = 9.9
  CHECK(aimd.update({.dropped = true}) == 8);                               // 8.1

  SECTION("a success slower than the timeout is a drop") {
    AimdLimit timed({.initial_limit = 20, .timeout = 5ms});
    CHECK(timed.update({.rtt = 5ms, .in_flight = 20}) == 21);
    CHECK(timed.update({.rtt = 6ms, .in_flight = 21}) == 18);  // 18.9
  }
}

TEST_CASE("limits stay within their minimum and maximum", "[adaptive]") {
  SECTION("AIMD") {
    AimdLimit aimd({.initial_limit = 10, .min_limit = 4, .max_limit = 12});
    for (int i = 0; i < 50; ++i) aimd.update({.dropped = true});
    CHECK(aimd.limit() == 4);
    for (int i = 0; i < 50; ++i) aimd.update({.in_flight = aimd.limit()});
    CHECK(aimd.limit() == 12);
  }
  SECTION("Gradient2") {
    Gradient2Limit gradient({.initial_limit = 20, .min_limit = 5, .max_limit = 30, .short_window = 1});
    for (int i = 0; i < 200; ++i) gradient.update({.rtt = 1ms, .in_flight = gradient.limit()});
    CHECK(gradient.limit() == 30);
    for (int i = 0; i < 200; ++i) gradient.update({.rtt = 50ms, .in_flight = gradient.limit()});
    CHECK(gradient.limit() == 5);
  }
  SECTION("an initial limit outside the bounds is clamped; impossible bounds are refused") {
    CHECK(AimdLimit({.initial_limit = 1, .min_limit = 4}).limit() == 4);
    CHECK(Gradient2Limit({.initial_limit = 5000, .max_limit = 100}).limit() == 100);
    CHECK_THROWS_AS(AimdLimit({.min_limit = 10, .max_limit = 5}), std::invalid_argument);
    CHECK_THROWS_AS(Gradient2Limit({.smoothing = 0}), std::invalid_argument);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    CHECK_THROWS_AS(Gradient2Limit({.initial_limit = nan}), std::invalid_argument);
    CHECK_THROWS_AS(Gradient2Limit({.max_limit = inf}), std::invalid_argument);
    CHECK_THROWS_AS(Gradient2Limit({.min_limit = nan}), std::invalid_argument);
    CHECK_THROWS_AS(Gradient2Limit({.tolerance = nan}), std::invalid_argument);
    CHECK_THROWS_AS(Gradient2Limit({.tolerance = 0}), std::invalid_argument);
    CHECK_THROWS_AS(AimdLimit({.backoff_ratio = nan}), std::invalid_argument);
    // No warm-up would start the baseline at 0 and read constant latency as a rise.
    CHECK_THROWS_WITH(Gradient2Limit({.warmup_windows = 0}),
                      Catch::Contains("warmup_windows must be at least 1"));
  }
  SECTION("AIMD's maximum may be SIZE_MAX: a success at it stays there") {
    constexpr auto kMax = std::numeric_limits<std::size_t>::max();
    AimdLimit aimd({.initial_limit = kMax - 1, .min_limit = 4, .max_limit = kMax});
    CHECK(aimd.update({.rtt = 1ms, .in_flight = kMax}) == kMax);
    CHECK(aimd.update({.rtt = 1ms, .in_flight = kMax}) == kMax);  // used to wrap to 0
    taskhive::AdaptiveLimiter limiter(
        std::make_unique<AimdLimit>(taskhive::AimdConfig{.initial_limit = kMax, .max_limit = kMax}));
    CHECK(limiter.stats().limit == std::numeric_limits<std::int64_t>::max());  // it read -1
  }
  SECTION("Gradient2 limits beyond SIZE_MAX read as SIZE_MAX, latencies beyond INT64_MAX ns as the maximum") {
    CHECK(Gradient2Limit({.initial_limit = 1e20, .max_limit = 1e20}).limit() ==
          std::numeric_limits<std::size_t>::max());
    Gradient2Limit slow({.short_window = 1});
    slow.update({.rtt = std::chrono::nanoseconds::max(), .in_flight = 1});
    CHECK(slow.short_rtt() == std::chrono::nanoseconds::max());  // it read INT64_MIN
    CHECK(slow.long_rtt() == std::chrono::nanoseconds::max());
  }
  SECTION("a NaN from queue_allowance leaves Gradient2's limit where it was") {
    int calls = 0;
    Gradient2Limit gradient({.initial_limit = 20, .short_window = 1, .queue_allowance = [&](double) {
                               return ++calls == 3 ? std::numeric_limits<double>::quiet_NaN() : 4.0;
                             }});
    for (int i = 0; i < 10; ++i) gradient.update({.rtt = 1ms, .in_flight = 1000});
    CHECK(calls == 10);
    CHECK(gradient.estimated_limit() > 20);  // it went on growing at constant latency (it stuck at 1)
  }
}

TEST_CASE("Gradient2 scales the limit by long RTT / short RTT, plus the allowance at the baseline",
          "[adaptive][gradient2]") {
  const Gradient2Config one_sample_windows{
      .initial_limit = 20, .smoothing = 0.5, .short_window = 1, .long_window = 600, .warmup_windows = 1};

  SECTION("latency at its baseline: grows by the allowance, smoothed") {
    Gradient2Limit gradient(one_sample_windows);
    gradient.update({.rtt = 1ms, .in_flight = 20});
    CHECK(gradient.estimated_limit() == Approx(22.0));  // 20 x 0.5 + (1 x 20 + 4) x 0.5
    CHECK(gradient.long_rtt() == 1ms);
    CHECK(gradient.short_rtt() == 1ms);
  }
  SECTION("latency doubled: the gradient halves the limit, smoothed, without an allowance") {
    Gradient2Limit gradient(one_sample_windows);
    gradient.update({.rtt = 1ms, .in_flight = 20});  // 22, baseline 1 ms
    gradient.update({.rtt = 2ms, .in_flight = 22});
    const double long_rtt = 1.0 + (2.0 - 1.0) * 2.0 / 601.0;  // the long average moved 1/300 of the way
    const double gradient_value = long_rtt / 2.0;
    CHECK(gradient.estimated_limit() == Approx(22 * 0.5 + 22 * gradient_value * 0.5));
    CHECK(gradient.limit() == 16);
  }
  SECTION("with allowance_while_queueing, Netflix's formula adds the allowance even then") {
    auto config = one_sample_windows;
    config.allowance_while_queueing = true;
    Gradient2Limit gradient(config);
    gradient.update({.rtt = 1ms, .in_flight = 20});
    gradient.update({.rtt = 2ms, .in_flight = 22});
    const double gradient_value = (1.0 + 2.0 / 601.0) / 2.0;
    CHECK(gradient.estimated_limit() == Approx(22 * 0.5 + (22 * gradient_value + 4) * 0.5));
  }
  SECTION("an unused limit does not grow, but may shrink") {
    Gradient2Limit gradient(one_sample_windows);
    gradient.update({.rtt = 1ms, .in_flight = 9});  // under half of 20
    CHECK(gradient.estimated_limit() == Approx(20.0));
    gradient.update({.rtt = 4ms, .in_flight = 9});
    CHECK(gradient.estimated_limit() < 20.0);
  }
  SECTION("the limit changes once per short window, from the window's mean RTT and peak in-flight") {
    Gradient2Limit gradient({.initial_limit = 20, .smoothing = 0.5, .short_window = 4, .warmup_windows = 1});
    gradient.update({.rtt = 1ms, .in_flight = 3});
    gradient.update({.rtt = 3ms, .in_flight = 20});
    gradient.update({.rtt = 1ms, .in_flight = 3});
    CHECK(gradient.estimated_limit() == Approx(20.0));  // three samples: no window yet
    gradient.update({.rtt = 3ms, .in_flight = 3});
    CHECK(gradient.short_rtt() == 2ms);
    CHECK(gradient.estimated_limit() == Approx(22.0));  // the first window is the baseline: gradient 1
  }
  SECTION("after a long overload the baseline is pulled down quickly once latency is back") {
    auto config = one_sample_windows;
    config.long_window = 1000;
    Gradient2Limit gradient(config);
    for (int i = 0; i < 3000; ++i) gradient.update({.rtt = 10ms, .in_flight = 20});
    REQUIRE(gradient.long_rtt() > 9ms);
    for (int i = 0; i < 100; ++i) gradient.update({.rtt = 1ms, .in_flight = 20});
    // The average alone would still be above 8 ms after 100 windows of 1000; the pull-down takes 5% a window
    // until the baseline is within twice the short RTT.
    CHECK(gradient.long_rtt() < 3ms);
  }
}

// --- AdaptiveLimiter ---------------------------------------------------------------------------------------

TEST_CASE("an adaptive limiter refuses work at its limit with a clear reason, and learns from outcomes",
          "[adaptive][limiter]") {
  AdaptiveLimiter limiter(
      std::make_unique<AimdLimit>(taskhive::AimdConfig{.initial_limit = 2, .min_limit = 1}));
  CHECK_FALSE(limiter.try_admit(3));
  CHECK_FALSE(limiter.try_admit(1));
  const auto refusal = limiter.try_admit(1);
  REQUIRE(refusal);
  CHECK(*refusal == "overloaded: 2 in flight, adaptive limit 2; retry later");
  auto stats = limiter.stats();
  CHECK(stats.limit == 2);
  CHECK(stats.in_flight == 2);
  CHECK(stats.load == 4);
  CHECK(stats.peak_load == 4);
  CHECK(stats.accepted == 2);
  CHECK(stats.rejected == 1);

  limiter.release(3, TaskState::succeeded, 1ms);  // 2 in flight at the limit 2: busy, so +1
  CHECK(limiter.limit() == 3);
  CHECK(limiter.in_flight() == 1);
  CHECK(limiter.stats().load == 1);

  SECTION("failures and time-outs are drops") {
    limiter.release(1, TaskState::timed_out, 10ms);
    CHECK(limiter.limit() == 2);  // 3 x 0.9
  }
  SECTION("cancelled and rejected work teaches nothing") {
    CHECK_FALSE(limiter.try_admit(1));
    limiter.release(1, TaskState::cancelled, 1ms);
    limiter.release(1, TaskState::rejected, 0ms);
    CHECK(limiter.limit() == 3);
    CHECK(limiter.in_flight() == 0);
  }
}

TEST_CASE("an adaptive limiter never admits more than its limit under concurrent use",
          "[adaptive][limiter]") {
  AdaptiveLimiter limiter(std::make_unique<FixedLimit>(10));
  std::atomic<std::size_t> inside{0}, most_inside{0};
  std::atomic<std::uint64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20'000; ++i) {
        if (limiter.try_admit(1)) continue;
        const auto now = ++inside;
        auto most = most_inside.load();
        while (now > most && !most_inside.compare_exchange_weak(most, now)) {
        }
        ++admitted;
        --inside;
        limiter.release(1, TaskState::succeeded, 1ms);
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto stats = limiter.stats();
  CHECK(most_inside <= 10);
  CHECK(stats.in_flight == 0);
  CHECK(stats.load == 0);
  CHECK(stats.accepted == admitted);
  CHECK(stats.accepted + stats.rejected == 8u * 20'000u);
}

TEST_CASE("a scheduler sheds load through an adaptive limiter", "[adaptive][limiter]") {
  auto limiter = std::make_shared<AdaptiveLimiter>(std::make_unique<FixedLimit>(2));
  taskhive::Scheduler scheduler({.workers = 2, .admission = limiter});
  taskhive::test::Gate gate;
  auto a = scheduler.submit([&] { gate.wait(); });
  auto b = scheduler.submit([&] { gate.wait(); });
  REQUIRE(gate.wait_for_waiters(2));
  auto refused = scheduler.try_submit([] {});
  CHECK(refused.state() == TaskState::rejected);
  CHECK(refused.error() == "overloaded: 2 in flight, adaptive limit 2; retry later");
  const auto metrics = scheduler.metrics();
  REQUIRE(metrics.admission);
  CHECK(metrics.admission->limit == 2);
  CHECK(metrics.admission->in_flight == 2);
  CHECK(metrics.admission->rejected == 1);
  gate.open();
  CHECK(a.wait() == TaskState::succeeded);
  CHECK(b.wait() == TaskState::succeeded);
  scheduler.wait_idle();
  CHECK(limiter->in_flight() == 0);
}

TEST_CASE("limit listeners hear every change, and a BoundedStage can follow the limit",
          "[adaptive][limiter]") {
  AdaptiveLimiter limiter(
      std::make_unique<AimdLimit>(taskhive::AimdConfig{.initial_limit = 6, .min_limit = 1}));
  tbb::flow::graph g;
  taskhive::BoundedStage<int, int> stage(
      g, {.max_in_flight = 8, .concurrency = 4, .initial_capacity = limiter.limit()},
      [](const int&, taskhive::StageOutput<int>&) {});
  std::vector<std::size_t> heard;
  const auto follow = limiter.on_limit_change([&](std::size_t limit) {
    heard.push_back(limit);
    stage.set_capacity(std::clamp<std::size_t>(limit, 1, stage.max_in_flight()));
  });
  const auto noisy =
      limiter.on_limit_change([](std::size_t) { throw std::runtime_error("logged, not fatal"); });

  limiter.record({.rtt = 1ms, .in_flight = 6});  // 7
  limiter.record({.rtt = 1ms, .in_flight = 7});  // 8
  limiter.record({.rtt = 1ms, .in_flight = 8});  // 9: above the stage's maximum
  limiter.record({.rtt = 1ms, .in_flight = 1});  // unchanged: no call
  limiter.record({.dropped = true});             // 8
  CHECK(heard == std::vector<std::size_t>{7, 8, 9, 8});
  CHECK(stage.capacity() == 8);
  limiter.record({.dropped = true});  // 7
  limiter.record({.dropped = true});  // 6
  CHECK(stage.capacity() == 6);
  CHECK(stage.effective_capacity() == 6);  // permits above the stage's concurrency (4) are held back at once
  limiter.remove_listener(follow);
  limiter.remove_listener(noisy);
  limiter.record({.dropped = true});
  CHECK(heard.size() == 6);
  CHECK(stage.capacity() == 6);
}

// --- in a simulated service
// ----------------------------------------------------------------------------------

TEST_CASE("Gradient2 keeps a service at its knee: limit within 25%, p99 within 2x of the unloaded latency",
          "[adaptive][gradient2][simulation]") {
  AdaptiveLimiter limiter(gradient2());
  // A minute of virtual time (about two million requests); the first ten seconds are warm-up.
  std::vector<Window> windows{{.from = 10 * kSecond, .to = 60 * kSecond}};
  simulate(limiter, {{60 * kSecond, kKnee}}, windows);
  auto& settled = windows[0];
  INFO("limit " << settled.min_limit << ".." << settled.max_limit << ", p99 " << settled.percentile(0.99));
  CHECK(settled.min_limit >= kKnee * 3 / 4);
  CHECK(settled.max_limit <= kKnee * 5 / 4);
  CHECK(settled.percentile(0.99) <= 2 * kBaseLatency);
  CHECK(settled.latencies.size() > 1'500'000);  // the limit did not buy latency with throughput
}

TEST_CASE("a fixed, oversized limit lets latency climb past the knee", "[adaptive][simulation]") {
  AdaptiveLimiter limiter(std::make_unique<FixedLimit>(kClients));
  std::vector<Window> windows{{.from = 5 * kSecond, .to = 15 * kSecond}};
  simulate(limiter, {{15 * kSecond, kKnee}}, windows);
  CHECK(windows[0].percentile(0.99) >= 4 * kBaseLatency);  // 200 in service: 6.25 ms
}

TEST_CASE("Gradient2's limit follows the knee down in an overload and grows back after it",
          "[adaptive][gradient2][simulation]") {
  AdaptiveLimiter limiter(gradient2({.min_limit = 2}));
  std::vector<Window> windows{{.from = 5 * kSecond, .to = 10 * kSecond},
                              {.from = 15 * kSecond, .to = 20 * kSecond},
                              {.from = 30 * kSecond, .to = 40 * kSecond}};
  // The service loses three quarters of its capacity from 10 s to 20 s.
  simulate(limiter, {{10 * kSecond, kKnee}, {20 * kSecond, kKnee / 4}, {40 * kSecond, kKnee}}, windows);
  auto& before = windows[0];
  auto& during = windows[1];
  auto& after = windows[2];
  INFO("limit before " << before.max_limit << ", during " << during.min_limit << ".." << during.max_limit
                       << ", after " << after.min_limit << ".." << after.max_limit);
  CHECK(before.max_limit <= kKnee * 5 / 4);
  CHECK(during.max_limit <= kKnee / 4 * 3 / 2);
  CHECK(during.percentile(0.99) <= 2 * kBaseLatency);
  CHECK(after.min_limit >= kKnee * 3 / 4);
  CHECK(after.max_limit <= kKnee * 5 / 4);
}

TEST_CASE("with the allowance added while queueing (Netflix's formula) the limit drifts past the knee",
          "[adaptive][gradient2][simulation]") {
  AdaptiveLimiter limiter(gradient2({.allowance_while_queueing = true}));
  std::vector<Window> windows{{.from = 20 * kSecond, .to = 30 * kSecond}};
  simulate(limiter, {{30 * kSecond, kKnee}}, windows);
  CHECK(windows[0].min_limit > kKnee * 5 / 4);
}

// Not run by default (hidden tag): prints the figures quoted in the report on the simulation.
TEST_CASE("simulation figures", "[.][report]") {
  auto run = [](const char* name, std::unique_ptr<LimitAlgorithm> algorithm) {
    AdaptiveLimiter limiter(std::move(algorithm));
    std::vector<Window> windows{{.from = 10 * kSecond, .to = 120 * kSecond}};
    simulate(limiter, {{120 * kSecond, kKnee}}, windows);
    auto& w = windows[0];
    WARN(name << ": limit " << w.min_limit << ".." << w.max_limit << ", p50 " << w.percentile(0.5) / 1e6
              << " ms, p99 " << w.percentile(0.99) / 1e6 << " ms, completed " << w.latencies.size()
              << ", refused " << w.refused);
  };
  run("Gradient2", gradient2());
  run("Gradient2 with allowance while queueing", gradient2({.allowance_while_queueing = true}));
  run("AIMD, 2 ms timeout", std::make_unique<AimdLimit>(taskhive::AimdConfig{.timeout = 2ms}));
  run("fixed 200", std::make_unique<FixedLimit>(kClients));
}
