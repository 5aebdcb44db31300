// Admission-control benchmarks (Google Benchmark; linked into taskhive_bench, whose main is in
// scheduler_bench.cpp). Families, by name (scripts/bench prints a summary of them):
//   BM_admission_acquire_release        one try_acquire + permit release; issue 3's target is <= 50 ns
//                                       uncontended (threads:1); threads:2 is the same controller contended
//   BM_admission_refuse                 one refused try_acquire (the reason is formatted: the overload path)
//   BM_admission_overload               a 2-worker scheduler behind an AdmissionController, offered ~4x what
//                                       its workers can run: what is accepted and refused, and what stays
//                                       bounded (queue depth, resident memory, accepted tasks' queue wait)
//   BM_admission_overload_no_admission  the same offered load with no admission control, for contrast
//
// The overload producers offer work open-loop, on a schedule (as clients of a server do, whether or not it
// keeps up), not as fast as they can: on this 2-core machine, producers spinning flat out would take the
// workers' cores and measure the producers. They sleep between bursts and submit whatever the schedule says
// is due, so "4x" is 4x the workers' nominal capacity (workers / task time), reported as offered_x.
//
// Overload counters: offered, accepted, rejected (per iteration; the run fails if accepted + rejected !=
// offered, or if the handles, the scheduler and the controller disagree, or a refusal has no reason);
// peak_queued (scheduler.metrics().queued, sampled every 200 µs); peak_load (the controller's, exact);
// rss_growth_mib (the most resident memory grew over the run, from a trimmed baseline); p99_wait_us and
// max_wait_us (queue wait of accepted tasks, from the scheduler's histogram); utilization (tasks completed
// per second over the workers' nominal capacity).

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <oneapi/tbb/scalable_allocator.h>

#include "taskhive/backpressure.hpp"
#include "taskhive/scheduler.hpp"

namespace {

using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// --- 1. one uncontended acquire + release ------------------------------------------------------------------

void BM_admission_acquire_release(benchmark::State& state) {
  // Shared by the benchmark's threads (one controller, contended when threads > 1).
  static std::unique_ptr<taskhive::AdmissionController> admission;
  if (state.thread_index() == 0) {
    admission =
        std::make_unique<taskhive::AdmissionController>(taskhive::AdmissionConfig{.max_load = 1 << 30});
  }
  // The timed loops of all threads start together, after thread 0 has set the controller up.
  for (auto _ : state) {
    auto permit = admission->try_acquire(1);
    benchmark::DoNotOptimize(permit);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  // The loops also end together, so every permit is back by now.
  if (state.thread_index() == 0) {
    const auto stats = admission->stats();
    if (stats.rejected != 0 || stats.load != 0) state.SkipWithError("an acquire was refused, or load leaked");
  }
}

BENCHMARK(BM_admission_acquire_release)->Threads(1)->Threads(2)->UseRealTime();

// What a refusal costs (it formats the reason): under overload most offers end here.
void BM_admission_refuse(benchmark::State& state) {
  taskhive::AdmissionController admission({.max_load = 100, .cooldown = 0s, .low_watermark = 100});
  auto held = admission.try_acquire(100);
  for (auto _ : state) {
    auto refused = admission.try_acquire(1);
    benchmark::DoNotOptimize(refused);
  }
  if (admission.stats().rejected != static_cast<std::uint64_t>(state.iterations())) {
    state.SkipWithError("an acquire was admitted at full load");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(BM_admission_refuse)->UseRealTime();

// --- 2. overload: offered 4x the workers' capacity ---------------------------------------------------------

constexpr unsigned kWorkers = 2;
constexpr auto kTaskTime = 20us;  // each task spins this long
constexpr int kProducers = 2;
constexpr int kOffersPerProducer = 20'000;  // per iteration
constexpr double kOverload = 4.0;           // offered rate / (kWorkers / kTaskTime)
constexpr std::int64_t kMaxLoad = 64;       // every task weighs 1: at most 64 tasks queued or running
// Shorter than draining from max_load to the low watermark (32 tasks x 20 us / 2 workers = 320 us), so the
// watermark, not the clock, decides when admission resumes, and the workers never run dry waiting for it.
constexpr auto kCooldown = 200us;

void spin_for(SteadyClock::duration d) {
  const auto end = SteadyClock::now() + d;
  while (SteadyClock::now() < end) {
  }
}

double resident_mib() {
  std::ifstream statm("/proc/self/statm");
  double size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

/// Returns cached free memory to the OS (glibc's and tbbmalloc's, which holds task records), so that memory
/// freed by earlier benchmarks does not hide this one's growth.
void release_free_memory() {
  malloc_trim(0);
  scalable_allocation_command(TBBMALLOC_CLEAN_ALL_BUFFERS, nullptr);
}

struct OfferCounts {
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  std::uint64_t rejected_without_reason = 0;  // must stay 0: every refusal says why
};

/// Offers kOffersPerProducer tasks on an open-loop schedule (one every `interval`), in bursts: it sleeps,
/// then submits everything that fell due meanwhile. Returns what happened to them.
OfferCounts offer(taskhive::Scheduler& scheduler, SteadyClock::duration interval, bool expect_overloaded) {
  OfferCounts counts;
  const auto start = SteadyClock::now();
  int offered = 0;
  while (offered < kOffersPerProducer) {
    const auto due = std::min<std::int64_t>(kOffersPerProducer, (SteadyClock::now() - start) / interval + 1);
    for (; offered < due; ++offered) {
      auto handle = scheduler.try_submit([] { spin_for(kTaskTime); });
      if (handle.state() != taskhive::TaskState::rejected) {
        ++counts.accepted;
        continue;
      }
      ++counts.rejected;
      const auto reason = handle.error();
      if (reason.empty() || (expect_overloaded && reason.rfind("overloaded: ", 0) != 0)) {
        ++counts.rejected_without_reason;
      }
    }
    std::this_thread::sleep_for(100us);
  }
  return counts;
}

void run_overload(benchmark::State& state, bool with_admission) {
  std::shared_ptr<taskhive::AdmissionController> admission;
  if (with_admission) {
    admission = std::make_shared<taskhive::AdmissionController>(
        taskhive::AdmissionConfig{.max_load = kMaxLoad, .cooldown = kCooldown});
  }
  // A queue far larger than the offered work: whatever bounds the queue here is admission control.
  taskhive::Scheduler scheduler(
      {.workers = kWorkers, .queue_capacity = 1'000'000, .name = "bench-adm", .admission = admission});
  const auto capacity_per_s = kWorkers / std::chrono::duration<double>(kTaskTime).count();
  const auto interval = std::chrono::duration_cast<SteadyClock::duration>(
      std::chrono::duration<double>(kProducers / (kOverload * capacity_per_s)));

  std::uint64_t accepted = 0, rejected = 0, offered = 0;
  std::int64_t peak_queued = 0;
  double peak_rss_growth = 0.0, offer_seconds = 0.0, total_seconds = 0.0;
  release_free_memory();
  const double rss_before = resident_mib();
  for (auto _ : state) {
    const auto start = SteadyClock::now();
    std::atomic<bool> sampling{true};
    std::thread sampler([&] {
      while (sampling.load(std::memory_order_relaxed)) {
        peak_queued = std::max(peak_queued, scheduler.metrics().queued);
        peak_rss_growth = std::max(peak_rss_growth, resident_mib() - rss_before);
        std::this_thread::sleep_for(200us);
      }
    });
    std::vector<OfferCounts> counts(kProducers);
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] { counts[p] = offer(scheduler, interval, with_admission); });
    }
    for (auto& producer : producers) producer.join();
    offer_seconds += std::chrono::duration<double>(SteadyClock::now() - start).count();
    scheduler.wait_idle();
    total_seconds += std::chrono::duration<double>(SteadyClock::now() - start).count();
    sampling.store(false);
    sampler.join();

    OfferCounts iteration;
    for (const auto& c : counts) {
      iteration.accepted += c.accepted;
      iteration.rejected += c.rejected;
      iteration.rejected_without_reason += c.rejected_without_reason;
    }
    accepted += iteration.accepted;
    rejected += iteration.rejected;
    offered += std::uint64_t{kProducers} * kOffersPerProducer;
    if (iteration.rejected_without_reason != 0) {
      state.SkipWithError("a rejected submit had no reason, or not the overloaded one");
      break;
    }
  }

  // Every offer was either accepted or rejected, and the scheduler and the controller agree on which.
  const auto m = scheduler.metrics();
  std::string error;
  if (accepted + rejected != offered) error = "accepted + rejected != offered";
  if (m.submitted != accepted || m.rejected != rejected)
    error = "the scheduler's counts disagree with the handles";
  if (m.succeeded != accepted) error = "not every accepted task succeeded";
  if (admission) {
    const auto a = admission->stats();
    if (a.accepted != accepted || a.rejected != rejected)
      error = "the controller's counts disagree with the handles";
    if (a.load != 0 || a.in_flight != 0) error = "load leaked: the controller is not back to 0";
    if (a.peak_load > kMaxLoad) error = "the load exceeded max_load";
    state.counters["peak_load"] = static_cast<double>(a.peak_load);
  }
  if (!error.empty()) state.SkipWithError(error.c_str());

  const auto n = static_cast<double>(state.iterations());
  state.counters["offered"] = static_cast<double>(offered) / n;
  state.counters["accepted"] = static_cast<double>(accepted) / n;
  state.counters["rejected"] = static_cast<double>(rejected) / n;
  state.counters["offered_x"] =
      offer_seconds > 0 ? static_cast<double>(offered) / offer_seconds / capacity_per_s : 0;
  // Tasks completed per second of the whole iteration, as a fraction of what the workers could run.
  state.counters["utilization"] =
      total_seconds > 0 ? static_cast<double>(accepted) / total_seconds / capacity_per_s : 0;
  state.counters["peak_queued"] = static_cast<double>(peak_queued);
  state.counters["rss_growth_mib"] = peak_rss_growth;
  state.counters["p99_wait_us"] = static_cast<double>(m.queue_wait.p99.count()) / 1e3;
  state.counters["max_wait_us"] = static_cast<double>(m.queue_wait.max.count()) / 1e3;
  state.SetItemsProcessed(static_cast<std::int64_t>(offered));
}

void BM_admission_overload(benchmark::State& state) {
  run_overload(state, true);
}
void BM_admission_overload_no_admission(benchmark::State& state) {
  run_overload(state, false);
}

BENCHMARK(BM_admission_overload)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_admission_overload_no_admission)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
