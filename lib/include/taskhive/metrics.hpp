#pragma once
// Metrics: lock-free counters, gauges and latency histograms, read as a consistent-enough snapshot.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include "taskhive/admission.hpp"

namespace taskhive {

/// Percentiles of a latency distribution, in nanoseconds. Percentiles are bucket upper bounds: within 1/16
/// (6.25%) of the true value above 1 µs, exact below.
struct HistogramSnapshot {
  std::uint64_t count = 0;
  std::chrono::nanoseconds min{0}, mean{0}, p50{0}, p90{0}, p99{0}, max{0};
};

namespace detail {

inline constexpr std::size_t kHistogramSubBuckets = 16;
inline constexpr std::size_t kHistogramBuckets = 61 * kHistogramSubBuckets;  // bucket_of(UINT64_MAX) is last

/// Bucket counts, sum, min and max of a set of recorded durations: one shard of a Histogram, or the part one
/// scheduler worker writes. Two ways to record, never to be mixed on one part: record_shared() when any
/// thread may record into the part (atomic read-modify-writes), record_exclusive() when only one thread
/// records into it at a time (plain loads and stores: no lock-prefixed instructions on the hot path).
struct alignas(64) HistogramPart {
  std::array<std::atomic<std::uint64_t>, kHistogramBuckets> buckets{};
  std::atomic<std::uint64_t> sum{0};
  std::atomic<std::uint64_t> min{UINT64_MAX};
  std::atomic<std::uint64_t> max{0};

  void record_shared(std::uint64_t ns) noexcept;
  void record_exclusive(std::uint64_t ns) noexcept;
  void reset() noexcept;
};

/// Adds up HistogramParts and turns the totals into percentiles.
class HistogramTotals {
 public:
  void add(const HistogramPart& part) noexcept;
  HistogramSnapshot snapshot() const noexcept;

 private:
  std::array<std::uint64_t, kHistogramBuckets> counts_{};
  std::uint64_t total_ = 0, sum_ = 0, min_ = UINT64_MAX, max_ = 0;
};

}  // namespace detail

/// A lock-free histogram of durations (log-linear buckets, 16 per power of two, like HdrHistogram with one
/// significant digit). record() is wait-free: two atomic adds and, rarely, a CAS for min/max, on a shard
/// picked by thread, so workers recording at once do not fight over one cache line.
///
/// @code
///   taskhive::Histogram run_time;
///   run_time.record(std::chrono::microseconds(250));
///   auto p99 = run_time.snapshot().p99;
/// @endcode
class Histogram {
 public:
  void record(std::chrono::nanoseconds value) noexcept;
  HistogramSnapshot snapshot() const noexcept;
  void reset() noexcept;

  /// Bucket index for a value in nanoseconds, and the largest value a bucket holds (public for tests).
  static std::size_t bucket_of(std::uint64_t ns) noexcept;
  static std::uint64_t bucket_upper_bound(std::size_t bucket) noexcept;
  static constexpr std::size_t kSubBuckets = detail::kHistogramSubBuckets;
  static constexpr std::size_t kBuckets = detail::kHistogramBuckets;
  static constexpr std::size_t kShards = 4;

 private:
  std::array<detail::HistogramPart, kShards> shards_{};
};

/// A scheduler's numbers at one moment. Counters only grow; gauges go up and down. Each field is read
/// atomically but not all at the same instant, so a snapshot taken under load can be off by in-flight tasks;
/// at quiescence, submitted == succeeded + failed + cancelled + timed_out.
struct MetricsSnapshot {
  // Counters.
  std::uint64_t submitted = 0;  ///< accepted tasks (rejections are counted apart)
  std::uint64_t rejected = 0;
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  std::uint64_t retried = 0;  ///< retries scheduled (one task may retry several times)
  std::uint64_t cancelled = 0;
  std::uint64_t timed_out = 0;
  // Gauges.
  std::int64_t queued = 0;      ///< waiting for a worker
  std::int64_t running = 0;     ///< inside their callable
  std::int64_t retry_wait = 0;  ///< waiting out a backoff in the timer
  std::int64_t in_flight = 0;   ///< accepted and not yet final
  // Latency.
  HistogramSnapshot queue_wait;  ///< from (re)queueing to start
  HistogramSnapshot run_time;    ///< one attempt's run
  /// The admission policy's numbers, when the scheduler has one (and its stats() did not throw).
  std::optional<AdmissionStats> admission;

  std::uint64_t finished() const noexcept { return succeeded + failed + cancelled + timed_out; }
};

}  // namespace taskhive
