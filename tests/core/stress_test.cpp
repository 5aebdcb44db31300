#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "taskhive/scheduler.hpp"

using namespace std::chrono_literals;
using taskhive::Scheduler;
using taskhive::ShutdownMode;
using taskhive::TaskHandle;
using taskhive::TaskState;

TEST_CASE("stress: 200k tasks with priorities, failures, retries, cancels and a racing shutdown",
          "[stress][shutdown]") {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 50'000;
  const auto mode = GENERATE(ShutdownMode::drain, ShutdownMode::cancel);
  Scheduler scheduler({.workers = 2, .queue_capacity = 4096});

  std::atomic<std::uint64_t> accepted{0}, rejected{0}, runs{0};
  std::mutex handles_mutex;
  std::vector<TaskHandle> handles;
  handles.reserve(kProducers * kPerProducer);
  std::atomic<int> produced{0};

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(1234 + p);
      std::vector<TaskHandle> mine;
      mine.reserve(kPerProducer);
      for (int i = 0; i < kPerProducer; ++i) {
        const bool fails = rng() % 10 == 0;
        const int fail_times = static_cast<int>(rng() % 3);  // 0..2 failures, some beyond max_retries
        auto attempts = std::make_shared<std::atomic<int>>(0);
        auto fn = [&runs, fails, fail_times, attempts] {
          runs++;
          if (fails && attempts->fetch_add(1) <= fail_times) throw std::runtime_error("injected");
        };
        auto h = scheduler.submit(fn, {.priority = static_cast<int>(rng() % 10),
                                       .retry = {.max_retries = 1, .initial_delay = 50us, .max_delay = 1ms}});
        (h.state() == TaskState::rejected ? rejected : accepted)++;
        if (rng() % 20 == 0) h.cancel();
        mine.push_back(std::move(h));
        produced++;
      }
      std::lock_guard lock(handles_mutex);
      for (auto& h : mine) handles.push_back(std::move(h));
    });
  }
  // Shut down while the producers are still going, once nine in ten tasks are in: most of the 200k go
  // through the scheduler, and the last tenth races the shutdown.
  constexpr int kBeforeShutdown = kProducers * kPerProducer / 10 * 9;
  while (produced.load() < kBeforeShutdown) std::this_thread::yield();
  scheduler.shutdown(mode);
  for (auto& t : producers) t.join();

  const auto m = scheduler.metrics();
  INFO("submitted " << m.submitted << " rejected " << m.rejected << " succeeded " << m.succeeded << " failed "
                    << m.failed << " cancelled " << m.cancelled << " timed_out " << m.timed_out);
  CHECK(m.submitted == accepted.load());
  CHECK(m.rejected == rejected.load());
  CHECK(m.submitted + m.rejected == static_cast<std::uint64_t>(kProducers * kPerProducer));
  // submit() waits for room, so only the shutdown refuses: every call that returned before it was accepted.
  CHECK(m.submitted >= static_cast<std::uint64_t>(kBeforeShutdown));
  CHECK(m.submitted == m.succeeded + m.failed + m.cancelled + m.timed_out);
  CHECK(m.in_flight == 0);
  CHECK(m.queued == 0);
  CHECK(m.running == 0);
  CHECK(m.retry_wait == 0);
  // Each run recorded its queue wait and its run time once, on its worker's tally: none lost, none twice.
  CHECK(m.queue_wait.count == runs.load());
  CHECK(m.run_time.count == runs.load());
  CHECK(m.failed > 0);
  CHECK(m.retried > 0);
  CHECK(m.cancelled > 0);
  // Every handle is final, and the per-state tally from handles matches the counters.
  std::uint64_t per_state[8] = {};
  for (auto& h : handles) {
    const auto s = h.state();
    REQUIRE(taskhive::is_final(s));
    per_state[static_cast<int>(s)]++;
  }
  CHECK(per_state[static_cast<int>(TaskState::succeeded)] == m.succeeded);
  CHECK(per_state[static_cast<int>(TaskState::failed)] == m.failed);
  CHECK(per_state[static_cast<int>(TaskState::cancelled)] == m.cancelled);
  CHECK(per_state[static_cast<int>(TaskState::rejected)] == m.rejected);
  CHECK(runs.load() >= m.succeeded + m.failed);
}
