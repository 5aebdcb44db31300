#include "taskhive/metrics.hpp"

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

void Histogram::record(std::chrono::nanoseconds value) noexcept {
  const auto ns = static_cast<std::uint64_t>(value.count() < 0 ? 0 : value.count());
  buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(ns, std::memory_order_relaxed);
  auto low = min_.load(std::memory_order_relaxed);
  while (ns < low && !min_.compare_exchange_weak(low, ns, std::memory_order_relaxed)) {
  }
  auto high = max_.load(std::memory_order_relaxed);
  while (ns > high && !max_.compare_exchange_weak(high, ns, std::memory_order_relaxed)) {
  }
}

HistogramSnapshot Histogram::snapshot() const noexcept {
  HistogramSnapshot s;
  std::array<std::uint64_t, kBuckets> counts;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) total += counts[i] = buckets_[i].load(std::memory_order_relaxed);
  s.count = total;
  if (total == 0) return s;
  const auto low = min_.load(std::memory_order_relaxed);
  const auto high = max_.load(std::memory_order_relaxed);
  s.min = std::chrono::nanoseconds(low);
  s.max = std::chrono::nanoseconds(high);
  s.mean = std::chrono::nanoseconds(sum_.load(std::memory_order_relaxed) / total);
  auto percentile = [&](double q) {
    const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts[i];
      if (seen >= rank && counts[i] > 0) {
        const auto bound = bucket_upper_bound(i);
        return std::chrono::nanoseconds(std::min(std::max(bound, low), high));
      }
    }
    return std::chrono::nanoseconds(high);
  };
  s.p50 = percentile(0.50);
  s.p90 = percentile(0.90);
  s.p99 = percentile(0.99);
  return s;
}

void Histogram::reset() noexcept {
  for (auto& b : buckets_) b.store(0, std::memory_order_relaxed);
  count_.store(0, std::memory_order_relaxed);
  sum_.store(0, std::memory_order_relaxed);
  min_.store(UINT64_MAX, std::memory_order_relaxed);
  max_.store(0, std::memory_order_relaxed);
}

}  // namespace taskhive
