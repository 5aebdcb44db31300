#include <catch2/catch.hpp>

#include <chrono>
#include <thread>
#include <vector>

#include "taskhive/metrics.hpp"
#include "taskhive/retry.hpp"
#include "taskhive/task.hpp"

using namespace std::chrono_literals;
using taskhive::Histogram;
using taskhive::RetryPolicy;

TEST_CASE("backoff grows by the multiplier and stops at the maximum", "[retry]") {
  RetryPolicy policy{
      .max_retries = 10, .initial_delay = 100ms, .multiplier = 2.0, .max_delay = 1s, .jitter = false};
  CHECK(policy.delay(0, 0.5) == 100ms);
  CHECK(policy.delay(1, 0.5) == 200ms);
  CHECK(policy.delay(2, 0.5) == 400ms);
  CHECK(policy.delay(3, 0.5) == 800ms);
  CHECK(policy.delay(4, 0.5) == 1s);
  CHECK(policy.delay(60, 0.5) == 1s);    // no overflow far out
  CHECK(policy.delay(5000, 0.5) == 1s);  // pow() is infinite here
}

TEST_CASE("a backoff that starts at zero stays at zero however many retries", "[retry]") {
  // 0 * pow(2, n) is 0 * inf = NaN once pow() overflows (n ~ 1024), which used to read as "the cap".
  RetryPolicy policy{.initial_delay = 0ms, .multiplier = 2.0, .max_delay = 30s, .jitter = false};
  CHECK(policy.delay(0, 0.5) == 0ms);
  CHECK(policy.delay(1023, 0.5) == 0ms);
  CHECK(policy.delay(1100, 0.5) == 0ms);
  CHECK(policy.delay(1'000'000, 0.5) == 0ms);
  policy.jitter = true;
  CHECK(policy.delay(5000, 0.9) == 0ms);
}

TEST_CASE("full jitter draws the delay uniformly below the capped exponential", "[retry]") {
  RetryPolicy policy{
      .max_retries = 3, .initial_delay = 100ms, .multiplier = 3.0, .max_delay = 2s, .jitter = true};
  SECTION("the random number scales the ceiling") {
    CHECK(policy.delay(0, 0.0) == 0ms);
    CHECK(policy.delay(0, 0.5) == 50ms);
    CHECK(policy.delay(2, 0.5) == 450ms);
    CHECK(policy.delay(3, 0.25) == 500ms);  // ceiling 2700 ms capped at 2 s
  }
  SECTION("out-of-range random numbers are clamped") {
    CHECK(policy.delay(0, -1.0) == 0ms);
    CHECK(policy.delay(0, 7.0) == 100ms);
  }
}

TEST_CASE("task states name themselves and know which are final", "[task]") {
  using taskhive::TaskState;
  CHECK(taskhive::to_string(TaskState::timed_out) == "timed_out");
  CHECK_FALSE(taskhive::is_final(TaskState::queued));
  CHECK_FALSE(taskhive::is_final(TaskState::running));
  CHECK_FALSE(taskhive::is_final(TaskState::retry_wait));
  for (auto s : {TaskState::succeeded, TaskState::failed, TaskState::cancelled, TaskState::timed_out,
                 TaskState::rejected}) {
    CHECK(taskhive::is_final(s));
  }
}

TEST_CASE("histogram buckets are exact below 16 ns and within 1/16 above", "[metrics]") {
  for (std::uint64_t v = 0; v < 16; ++v) CHECK(Histogram::bucket_upper_bound(Histogram::bucket_of(v)) == v);
  for (std::uint64_t v : {16ull, 17ull, 31ull, 32ull, 1000ull, 123456ull, 1ull << 40, ~0ull}) {
    const auto bucket = Histogram::bucket_of(v);
    REQUIRE(bucket < Histogram::kBuckets);
    const auto upper = Histogram::bucket_upper_bound(bucket);
    CHECK(upper >= v);
    CHECK(static_cast<double>(upper - v) <= static_cast<double>(v) / 16.0);
    if (bucket > 0) CHECK(Histogram::bucket_upper_bound(bucket - 1) < v);
  }
}

TEST_CASE("histogram percentiles of a known distribution", "[metrics]") {
  Histogram h;
  CHECK(h.snapshot().count == 0);
  for (int i = 1; i <= 1000; ++i) h.record(std::chrono::microseconds(i));
  const auto s = h.snapshot();
  CHECK(s.count == 1000);
  CHECK(s.min == 1us);
  CHECK(s.max == 1000us);
  auto near = [](std::chrono::nanoseconds got, std::chrono::nanoseconds want) {
    return got >= want && got.count() <= want.count() * 17 / 16;
  };
  CHECK(near(s.p50, 500us));
  CHECK(near(s.p90, 900us));
  CHECK(near(s.p99, 990us));
  CHECK(near(s.mean, 500us));
  h.reset();
  CHECK(h.snapshot().count == 0);
}

TEST_CASE("histogram records from many threads lose nothing", "[metrics]") {
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50'000; ++i) h.record(std::chrono::nanoseconds(i));
    });
  }
  for (auto& t : threads) t.join();
  CHECK(h.snapshot().count == 200'000);
  CHECK(h.snapshot().max == std::chrono::nanoseconds(49'999));
}
