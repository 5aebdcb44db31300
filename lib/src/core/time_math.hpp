#pragma once
// Time arithmetic that saturates instead of overflowing: callers may pass nanoseconds::max() for "forever".

#include <chrono>

namespace taskhive::detail {

/// t + d, or time_point::max() if that would overflow; d is taken as non-negative.
template <typename TimePoint>
TimePoint saturating_add(TimePoint t, std::chrono::nanoseconds d) {
  if (d <= std::chrono::nanoseconds::zero()) return t;
  const auto headroom = std::chrono::duration_cast<std::chrono::nanoseconds>(TimePoint::max() - t);
  if (d >= headroom) return TimePoint::max();
  return t + std::chrono::duration_cast<typename TimePoint::duration>(d);
}

}  // namespace taskhive::detail
