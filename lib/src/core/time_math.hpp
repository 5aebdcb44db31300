#pragma once
// Time arithmetic that saturates instead of overflowing: callers may pass nanoseconds::max() for "forever".

#include <chrono>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace taskhive::detail {

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

/// t + d, or time_point::max() if that would overflow; d is taken as non-negative. On the counts, so that a
/// clock reading before its epoch (negative) does not overflow the headroom max() - t.
template <typename TimePoint>
TimePoint saturating_add(TimePoint t, std::chrono::nanoseconds d) {
  static_assert(std::is_same_v<typename TimePoint::duration, std::chrono::nanoseconds>);
  if (d <= std::chrono::nanoseconds::zero()) return t;
  return TimePoint(std::chrono::nanoseconds(saturating_add(t.time_since_epoch().count(), d.count())));
}

}  // namespace taskhive::detail
