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

namespace {

std::size_t this_thread_shard() noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t shard = next.fetch_add(1, std::memory_order_relaxed) % Histogram::kShards;
  return shard;
}

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

}  // namespace

void Histogram::record(std::chrono::nanoseconds value) noexcept {
  const auto ns = static_cast<std::uint64_t>(value.count() < 0 ? 0 : value.count());
  auto& shard = shards_[this_thread_shard()];
  shard.buckets[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
  shard.sum.fetch_add(ns, std::memory_order_relaxed);
  lower_to(shard.min, ns);
  raise_to(shard.max, ns);
}

HistogramSnapshot Histogram::snapshot() const noexcept {
  HistogramSnapshot s;
  std::array<std::uint64_t, kBuckets> counts{};
  std::uint64_t total = 0, sum = 0, low = UINT64_MAX, high = 0;
  for (const auto& shard : shards_) {
    for (std::size_t i = 0; i < kBuckets; ++i) {
      const auto n = shard.buckets[i].load(std::memory_order_relaxed);
      counts[i] += n;
      total += n;
    }
    sum += shard.sum.load(std::memory_order_relaxed);
    low = std::min(low, shard.min.load(std::memory_order_relaxed));
    high = std::max(high, shard.max.load(std::memory_order_relaxed));
  }
  s.count = total;
  if (total == 0) return s;
  s.min = std::chrono::nanoseconds(low);
  s.max = std::chrono::nanoseconds(high);
  s.mean = std::chrono::nanoseconds(sum / total);
  auto percentile = [&](double q) {
    const auto rank =
        std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total))));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts[i];
      if (seen >= rank) return std::chrono::nanoseconds(std::clamp(bucket_upper_bound(i), low, high));
    }
    return std::chrono::nanoseconds(high);
  };
  s.p50 = percentile(0.50);
  s.p90 = percentile(0.90);
  s.p99 = percentile(0.99);
  return s;
}

void Histogram::reset() noexcept {
  for (auto& shard : shards_) {
    for (auto& b : shard.buckets) b.store(0, std::memory_order_relaxed);
    shard.sum.store(0, std::memory_order_relaxed);
    shard.min.store(UINT64_MAX, std::memory_order_relaxed);
    shard.max.store(0, std::memory_order_relaxed);
  }
}

}  // namespace taskhive
