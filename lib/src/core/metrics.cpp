#include "taskhive/metrics.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace taskhive {

std::size_t Histogram::bucket_of(std::uint64_t ns) noexcept {
  if (ns < kSubBuckets) return static_cast<std::size_t>(ns);  // exact below 16 ns
  const int msb = 63 - std::countl_zero(ns);                  // >= 4
  const int shift = msb - 4;
  const auto sub = static_cast<std::size_t>((ns >> shift) & (kSubBuckets - 1));
  return static_cast<std::size_t>(msb - 3) * kSubBuckets + sub;
}

std::uint64_t Histogram::bucket_upper_bound(std::size_t bucket) noexcept {
  if (bucket < kSubBuckets) return bucket;
  const auto msb = bucket / kSubBuckets + 3;
  const auto sub = bucket % kSubBuckets;
  const auto shift = msb - 4;
  const std::uint64_t lower = (kSubBuckets + sub) << shift;
  return lower + ((std::uint64_t{1} << shift) - 1);
}

namespace detail {

namespace {

void lower_to(std::atomic<std::uint64_t>& target, std::uint64_t value) noexcept {
  auto current = target.load(std::memory_order_relaxed);
  while (value < current && !target.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
  }
}

void raise_to(std::atomic<std::uint64_t>& target, std::uint64_t value) noexcept {
  auto current = target.load(std::memory_order_relaxed);
  while (value > current && !target.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
  }
}

// Only the calling thread writes the part: a load and a store instead of a locked read-modify-write. Atomics
// still, because HistogramTotals reads the part from other threads; the store releases, so a reader that
// sees a recording also sees what the same thread recorded before it (a run time's start was counted), at
// no cost on x86.
void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_release);
}

}  // namespace

void HistogramPart::record_shared(std::uint64_t ns) noexcept {
  buckets[Histogram::bucket_of(ns)].fetch_add(1, std::memory_order_release);
  sum.fetch_add(ns, std::memory_order_relaxed);
  lower_to(min, ns);
  raise_to(max, ns);
}

void HistogramPart::record_exclusive(std::uint64_t ns) noexcept {
  bump(buckets[Histogram::bucket_of(ns)], 1);
  bump(sum, ns);
  if (ns < min.load(std::memory_order_relaxed)) min.store(ns, std::memory_order_relaxed);
  if (ns > max.load(std::memory_order_relaxed)) max.store(ns, std::memory_order_relaxed);
}

void HistogramPart::reset() noexcept {
  for (auto& b : buckets) b.store(0, std::memory_order_relaxed);
  sum.store(0, std::memory_order_relaxed);
  min.store(UINT64_MAX, std::memory_order_relaxed);
  max.store(0, std::memory_order_relaxed);
}

void HistogramTotals::add(const HistogramPart& part) noexcept {
  for (std::size_t i = 0; i < kHistogramBuckets; ++i) {
    const auto n = part.buckets[i].load(std::memory_order_acquire);
    counts_[i] += n;
    total_ += n;
  }
  sum_ += part.sum.load(std::memory_order_relaxed);
  min_ = std::min(min_, part.min.load(std::memory_order_relaxed));
  max_ = std::max(max_, part.max.load(std::memory_order_relaxed));
}

HistogramSnapshot HistogramTotals::snapshot() const noexcept {
  HistogramSnapshot s;
  s.count = total_;
  if (total_ == 0) return s;
  s.min = std::chrono::nanoseconds(min_);
  s.max = std::chrono::nanoseconds(max_);
  s.mean = std::chrono::nanoseconds(sum_ / total_);
  auto percentile = [&](double q) {
    const auto rank =
        std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_))));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kHistogramBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        // Not std::clamp: read while recordings go on, min_ may exceed max_, which clamp forbids.
        return std::chrono::nanoseconds(std::max(std::min(Histogram::bucket_upper_bound(i), max_), min_));
      }
    }
    return std::chrono::nanoseconds(max_);
  };
  s.p50 = percentile(0.50);
  s.p90 = percentile(0.90);
  s.p99 = percentile(0.99);
  return s;
}

}  // namespace detail

namespace {

std::size_t this_thread_shard() noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t shard = next.fetch_add(1, std::memory_order_relaxed) % Histogram::kShards;
  return shard;
}

}  // namespace

void Histogram::record(std::chrono::nanoseconds value) noexcept {
  shards_[this_thread_shard()].record_shared(
      static_cast<std::uint64_t>(value.count() < 0 ? 0 : value.count()));
}

HistogramSnapshot Histogram::snapshot() const noexcept {
  detail::HistogramTotals totals;
  for (const auto& shard : shards_) totals.add(shard);
  return totals.snapshot();
}

void Histogram::reset() noexcept {
  for (auto& shard : shards_) shard.reset();
}

}  // namespace taskhive
