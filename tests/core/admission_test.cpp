#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "support/gate.hpp"
#include "taskhive/scheduler.hpp"

using namespace std::chrono_literals;
using taskhive::AdmissionPolicy;
using taskhive::AdmissionStats;
using taskhive::ManualClock;
using taskhive::RejectReason;
using taskhive::Scheduler;
using taskhive::TaskState;
using taskhive::test::Gate;
using taskhive::test::Signal;

namespace {

/// Admits up to `max` load and records every release with its outcome.
class RecordingPolicy final : public AdmissionPolicy {
 public:
  explicit RecordingPolicy(std::int64_t max) : max_(max) {}

  std::optional<std::string> try_admit(std::uint32_t load) override {
    std::lock_guard lock(mutex_);
    if (load_ + load > max_) return "overloaded: test policy is full";
    load_ += load;
    ++admitted_;
    return std::nullopt;
  }
  void release(std::uint32_t load, TaskState outcome, std::chrono::nanoseconds latency) noexcept override {
    std::lock_guard lock(mutex_);
    load_ -= load;
    ++released_[outcome];
    last_latency_ = latency;
  }
  AdmissionStats stats() const override {
    std::lock_guard lock(mutex_);
    return {.load = load_, .limit = max_};
  }
  std::int64_t load() const {
    std::lock_guard lock(mutex_);
    return load_;
  }
  int released(TaskState s) const {
    std::lock_guard lock(mutex_);
    auto it = released_.find(s);
    return it == released_.end() ? 0 : it->second;
  }
  int admitted() const {
    std::lock_guard lock(mutex_);
    return admitted_;
  }
  std::chrono::nanoseconds last_latency() const {
    std::lock_guard lock(mutex_);
    return last_latency_;
  }

 private:
  mutable std::mutex mutex_;
  std::int64_t max_;
  std::int64_t load_ = 0;
  int admitted_ = 0;
  std::map<TaskState, int> released_;
  std::chrono::nanoseconds last_latency_{-1};
};

}  // namespace

TEST_CASE("an admission policy's refusal rejects the task with the policy's reason", "[admission]") {
  auto policy = std::make_shared<RecordingPolicy>(10);
  Scheduler scheduler({.workers = 2, .admission = policy});
  Gate gate;
  auto holder = scheduler.submit([&] { gate.wait(); }, {.load = 8});
  REQUIRE(gate.wait_for_waiters(1));
  auto refused = scheduler.try_submit([] {}, {.load = 3});
  CHECK(refused.state() == TaskState::rejected);
  CHECK(refused.error() == "overloaded: test policy is full");
  CHECK(refused.reject_reason() == RejectReason::overloaded);
  CHECK(scheduler.try_submit([] {}, {.load = 2}).wait() == TaskState::succeeded);
  REQUIRE(scheduler.metrics().admission);
  CHECK(scheduler.metrics().admission->limit == 10);
  gate.open();
  holder.wait();
  scheduler.wait_idle();
  CHECK(policy->load() == 0);
}

TEST_CASE("a task's load is released at its final state however it ends", "[admission]") {
  auto clock = std::make_shared<ManualClock>();
  auto policy = std::make_shared<RecordingPolicy>(1000);
  Scheduler scheduler({.workers = 1, .queue_capacity = 3, .clock = clock, .admission = policy});
  Gate gate;
  Signal started;
  auto blocker = scheduler.submit([&] { started.notify(), gate.wait(); }, {.load = 5});
  REQUIRE(started.wait_for_count(1));

  auto cancelled = scheduler.submit([] {}, {.load = 7});
  auto timed_out = scheduler.submit([] {}, {.timeout = 1s, .load = 11});
  auto exhausted =
      scheduler.submit([] { throw std::runtime_error("no"); },
                       {.retry = {.max_retries = 1, .initial_delay = 1ms, .jitter = false}, .load = 13});
  auto queue_full = scheduler.try_submit([] {}, {.load = 17});  // admitted, then refused a queue slot
  CHECK(queue_full.state() == TaskState::rejected);
  CHECK(queue_full.error().find("queue full") == 0);
  CHECK(queue_full.reject_reason() == RejectReason::queue_full);
  CHECK(policy->load() == 5 + 7 + 11 + 13);

  cancelled.cancel();
  clock->advance(1s);
  CHECK(timed_out.wait() == TaskState::timed_out);
  gate.open();
  CHECK(blocker.wait() == TaskState::succeeded);
  std::thread advancer([&] {
    while (!exhausted.done()) {
      clock->advance(1ms);
      std::this_thread::yield();
    }
  });
  CHECK(exhausted.wait() == TaskState::failed);
  advancer.join();
  scheduler.wait_idle();

  CHECK(policy->load() == 0);
  CHECK(policy->admitted() == 5);
  CHECK(policy->released(TaskState::succeeded) == 1);
  CHECK(policy->released(TaskState::cancelled) == 1);
  CHECK(policy->released(TaskState::timed_out) == 1);
  CHECK(policy->released(TaskState::failed) == 1);  // once, though it ran twice
  CHECK(policy->released(TaskState::rejected) == 1);
}

TEST_CASE("a task ended during its retry backoff reports its last attempt's latency, not the backoff",
          "[admission][retry]") {
  auto clock = std::make_shared<ManualClock>();
  auto policy = std::make_shared<RecordingPolicy>(1000);
  Scheduler scheduler({.workers = 1, .clock = clock, .admission = policy});
  auto task = scheduler.submit(
      [&] {
        clock->advance(3ms);  // the attempt takes 3 ms on the scheduler's clock
        throw std::runtime_error("transient");
      },
      {.retry = {.max_retries = 1, .initial_delay = 10s, .jitter = false}});
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (task.state() != TaskState::retry_wait && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  REQUIRE(task.state() == TaskState::retry_wait);
  clock->advance(5s);  // half the backoff
  task.cancel();
  REQUIRE(task.wait() == TaskState::cancelled);
  scheduler.wait_idle();
  CHECK(policy->released(TaskState::cancelled) == 1);
  CHECK(policy->last_latency() == 3ms);  // it was 5.003 s: the backoff counted as latency
}

TEST_CASE("an admission policy that throws rejects the task and leaves the scheduler whole", "[admission]") {
  class Broken final : public AdmissionPolicy {
   public:
    std::optional<std::string> try_admit(std::uint32_t) override { throw std::runtime_error("policy bug"); }
    void release(std::uint32_t, TaskState, std::chrono::nanoseconds) noexcept override {}
    AdmissionStats stats() const override { throw std::runtime_error("stats bug"); }
  };
  Scheduler scheduler({.workers = 1, .admission = std::make_shared<Broken>()});
  auto task = scheduler.submit([] {});
  CHECK(task.state() == TaskState::rejected);
  CHECK(task.error() == "the admission policy failed: policy bug");
  scheduler.wait_idle();  // would hang if the failed submit had left itself counted in flight
  // A policy whose stats() throws leaves its part of the metrics empty, not the whole snapshot unreadable.
  const auto m = scheduler.metrics();
  CHECK(m.in_flight == 0);
  CHECK(m.rejected == 1);
  CHECK_FALSE(m.admission.has_value());
}
