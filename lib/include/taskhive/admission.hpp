#pragma once
// AdmissionPolicy: the scheduler's hook for admission control, so core can shed load without knowing how a
// policy decides (load-based and adaptive policies live in the flow layer, taskhive/backpressure.hpp).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "taskhive/task.hpp"

namespace taskhive {

/// A policy's numbers at one moment, reported in MetricsSnapshot::admission.
struct AdmissionStats {
  std::int64_t load = 0;       ///< weight admitted and not yet released
  std::int64_t peak_load = 0;  ///< the most `load` has been
  std::int64_t limit = 0;      ///< the most that may be admitted now (max_load, or an adaptive limit)
  std::int64_t in_flight = 0;  ///< admissions not yet released
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
};

/// Decides whether work may enter. A scheduler given one (SchedulerOptions::admission) asks it at every
/// submit, with the task's load weight, and tells it when the task reaches its final state.
///
/// @code
///   taskhive::AdmissionConfig config{.max_load = 100};
///   auto admission = std::make_shared<taskhive::AdmissionController>(config);
///   taskhive::Scheduler scheduler({.workers = 4, .admission = admission});
///   auto h = scheduler.try_submit(work, {.load = 20});  // "overloaded: load 90 + 20 > max 100"
/// @endcode
///
/// Admission comes before the queue: a task admitted and then refused a queue slot (or waiting for one in a
/// blocking submit) holds its load meanwhile, and is released with the outcome `rejected` and zero latency.
/// Implementations are thread-safe; try_admit() and release() are on every task's path and should not block.
/// A policy that throws from try_admit() gets the task rejected with the exception's message.
class AdmissionPolicy {
 public:
  virtual ~AdmissionPolicy() = default;

  /// Admits work of weight `load`, or returns why not, written for a person.
  virtual std::optional<std::string> try_admit(std::uint32_t load) = 0;

  /// Work admitted with `load` has ended in `outcome`; `latency` is from when it was last queued to its end
  /// (queue wait plus run, a retry's backoff excluded). Called exactly once per successful try_admit().
  virtual void release(std::uint32_t load, TaskState outcome, std::chrono::nanoseconds latency) noexcept = 0;

  virtual AdmissionStats stats() const = 0;
};

}  // namespace taskhive
