#pragma once
// Time arithmetic that saturates instead of overflowing: callers may pass nanoseconds::max() for "forever".

#include <chrono>
#include <cstdint>
#include <limits>

namespace taskhive::detail {

/// t + d, or time_point::max() if that would overflow; d is taken as non-negative.
template <typename TimePoint>
TimePoint saturating_add(TimePoint t, std::chrono::nanoseconds d) {
  if (d <= std::chrono::nanoseconds::zero()) return t;
  const auto headroom = std::chrono::duration_cast<std::chrono::nanoseconds>(TimePoint::max() - t);
  if (d >= headroom) return TimePoint::max();
  return t + std::chrono::duration_cast<typename TimePoint::duration>(d);
}

/// a + b and a - b on nanosecond counts, clamped to the int64 range instead of overflowing.
inline std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t sum = 0;
  if (!__builtin_add_overflow(a, b, &sum)) return sum;
  return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
}
inline std::int64_t saturating_sub(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t difference = 0;
  if (!__builtin_sub_overflow(a, b, &difference)) return difference;
  return b < 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
}

}  // namespace taskhive::detail
