#pragma once
// RetryPolicy: how many times a failed task runs again, and how long it waits first.

#include <chrono>
#include <cstdint>

namespace taskhive {

/// Exponential backoff with "full jitter" (the AWS Architecture Blog's name for it):
///   delay(n) = random(0, min(max_delay, initial_delay * multiplier^n))   for the n-th retry, n = 0, 1, ...
/// Full jitter spreads retries of tasks that failed together, so they do not come back as a herd.
///
/// @code
///   taskhive::RetryPolicy retry{.max_retries = 3, .initial_delay = std::chrono::milliseconds(100)};
///   scheduler.submit(flaky_upload, {.name = "upload", .retry = retry});
/// @endcode
struct RetryPolicy {
  /// Runs after the first failure; 0 means the first failure is final.
  std::int32_t max_retries = 0;
  std::chrono::nanoseconds initial_delay = std::chrono::milliseconds(100);
  /// Finite and at least 1 (1: a constant delay); anything else makes submit throw std::invalid_argument.
  double multiplier = 2.0;
  /// shutdown(ShutdownMode::drain) and the destructor wait for pending retries: a max_delay of hours holds
  /// them up that long (nanoseconds::max(): for ever); ShutdownMode::cancel ends retry-waiting tasks at once.
  std::chrono::nanoseconds max_delay = std::chrono::seconds(30);
  /// With jitter off, the delay is exactly the capped exponential (useful in tests).
  bool jitter = true;

  /// The capped exponential for retry `n` (0-based), before jitter.
  std::chrono::nanoseconds ceiling(std::int32_t n) const noexcept;

  /// The delay before retry `n`, given a uniform random number `u` in [0, 1) (ignored without jitter).
  std::chrono::nanoseconds delay(std::int32_t n, double u) const noexcept;
};

}  // namespace taskhive
