#include "taskhive/adaptive_limit.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "taskhive/logging.hpp"

namespace taskhive {

namespace {

std::size_t round_limit(double limit) noexcept {
  // Saturating: a double past SIZE_MAX (about 1.8e19) does not convert (undefined behaviour).
  constexpr double kLargest = static_cast<double>(std::numeric_limits<std::size_t>::max());
  const double floored = std::floor(limit);
  if (!(floored < kLargest)) return std::numeric_limits<std::size_t>::max();
  return static_cast<std::size_t>(std::max(1.0, floored));
}

// Saturating: a mean of samples near nanoseconds::max() reaches 2^63 as a double, which does not convert.
std::chrono::nanoseconds to_duration(double ns) noexcept {
  constexpr double kLargest = 9.2233720368547748e18;  // the largest double below 2^63
  if (!(ns < kLargest)) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

void raise_to(std::atomic<std::int64_t>& target, std::int64_t value) noexcept {
  auto current = target.load(std::memory_order_relaxed);
  while (value > current && !target.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
  }
}

}  // namespace

// --- Gradient2
// ----------------------------------------------------------------------------------------------------

Gradient2Limit::Gradient2Limit(Gradient2Config config) : config_(std::move(config)) {
  // Written as !(a <= b) so that NaN fails each check.
  if (!(config_.min_limit >= 1) || !(config_.max_limit >= config_.min_limit) ||
      !std::isfinite(config_.max_limit))
    throw std::invalid_argument("Gradient2Limit: need 1 <= min_limit <= max_limit, both finite");
  if (!(config_.smoothing > 0 && config_.smoothing <= 1))
    throw std::invalid_argument("Gradient2Limit: smoothing must be in (0, 1]");
  if (!(config_.tolerance > 0) || !std::isfinite(config_.tolerance))
    throw std::invalid_argument("Gradient2Limit: tolerance must be positive and finite");
  if (config_.short_window == 0 || config_.long_window == 0)
    throw std::invalid_argument("Gradient2Limit: short_window and long_window must be at least 1");
  // The baseline starts as the mean of the first windows; with none it would start from 0 and read every
  // latency as a rise.
  if (config_.warmup_windows == 0)
    throw std::invalid_argument("Gradient2Limit: warmup_windows must be at least 1");
  if (std::isnan(config_.initial_limit)) throw std::invalid_argument("Gradient2Limit: initial_limit is NaN");
  if (!config_.queue_allowance) config_.queue_allowance = [](double) { return 4.0; };
  limit_ = std::clamp(config_.initial_limit, config_.min_limit, config_.max_limit);
}

std::size_t Gradient2Limit::limit() const {
  return round_limit(limit_);
}

std::chrono::nanoseconds Gradient2Limit::long_rtt() const noexcept {
  return to_duration(long_rtt_ns_);
}

std::chrono::nanoseconds Gradient2Limit::short_rtt() const noexcept {
  return to_duration(short_rtt_ns_);
}

std::size_t Gradient2Limit::update(const LimitSample& sample) {
  // Drops carry a latency too (a time-out's is long), so Gradient2 learns from every sample, as Netflix's
  // does.
  window_sum_ns_ += static_cast<double>(std::max<std::int64_t>(0, sample.rtt.count()));
  window_max_in_flight_ = std::max(window_max_in_flight_, sample.in_flight);
  if (++window_samples_ < config_.short_window) return limit();

  const double short_rtt = std::max(1.0, window_sum_ns_ / static_cast<double>(window_samples_));
  const auto max_in_flight = static_cast<double>(window_max_in_flight_);
  window_sum_ns_ = 0;
  window_samples_ = 0;
  window_max_in_flight_ = 0;
  short_rtt_ns_ = short_rtt;

  // The long window: a plain mean over the first windows, then an exponential average over long_window.
  ++windows_;
  if (windows_ <= config_.warmup_windows) {
    long_rtt_ns_ += (short_rtt - long_rtt_ns_) / static_cast<double>(windows_);
  } else {
    const double factor = 2.0 / (static_cast<double>(config_.long_window) + 1.0);
    long_rtt_ns_ += (short_rtt - long_rtt_ns_) * factor;
  }
  const double long_rtt = long_rtt_ns_;
  // After a long overload the baseline has crept up with the latency; once latency is back down, pull the
  // baseline down quickly rather than wait out the average, or the limit would grow unchecked meanwhile.
  if (long_rtt / short_rtt > 2.0) long_rtt_ns_ *= 0.95;

  const double gradient = std::clamp(config_.tolerance * long_rtt / short_rtt, 0.5, 1.0);
  // The allowance is what lets the limit probe upwards; adding it while queueing is detected lets the limit
  // outrun the baseline, which then follows the latency the limit causes (see allowance_while_queueing).
  const bool probe = gradient >= 1.0 || config_.allowance_while_queueing;
  double next = limit_ * gradient + (probe ? config_.queue_allowance(limit_) : 0.0);
  next = limit_ * (1.0 - config_.smoothing) + next * config_.smoothing;
  // An unused limit says nothing about what the service could take: do not let it grow.
  if (max_in_flight < limit_ / 2) next = std::min(next, limit_);
  // A NaN (from a queue_allowance that returned one) would stay in the limit for ever: keep the last one.
  if (!std::isnan(next)) limit_ = std::clamp(next, config_.min_limit, config_.max_limit);
  return limit();
}

// --- AIMD
// ---------------------------------------------------------------------------------------------------------

AimdLimit::AimdLimit(AimdConfig config) : config_(config) {
  if (config_.min_limit < 1 || config_.max_limit < config_.min_limit)
    throw std::invalid_argument("AimdLimit: need 1 <= min_limit <= max_limit");
  if (!(config_.backoff_ratio > 0 && config_.backoff_ratio < 1))  // NaN fails too
    throw std::invalid_argument("AimdLimit: backoff_ratio must be in (0, 1)");
  limit_ = std::clamp(config_.initial_limit, config_.min_limit, config_.max_limit);
}

std::size_t AimdLimit::update(const LimitSample& sample) {
  const bool too_slow = config_.timeout && sample.rtt > *config_.timeout;
  if (sample.dropped || too_slow) {
    const auto reduced = static_cast<std::size_t>(static_cast<double>(limit_) * config_.backoff_ratio);
    limit_ = std::max(config_.min_limit, reduced);
  } else if (sample.in_flight >= limit_ && limit_ < config_.max_limit) {
    ++limit_;  // not min(max_limit, limit_ + 1): at SIZE_MAX that wrapped to 0
  }
  return limit_;
}

// --- AdaptiveLimiter
// -----------------------------------------------------------------------------------------------

AdaptiveLimiter::AdaptiveLimiter(std::unique_ptr<LimitAlgorithm> algorithm)
    : algorithm_(std::move(algorithm)) {
  if (!algorithm_) throw std::invalid_argument("AdaptiveLimiter: the algorithm must not be null");
  limit_.store(std::max<std::size_t>(1, algorithm_->limit()), std::memory_order_release);
  last_notified_ = limit_.load(std::memory_order_relaxed);
}

std::optional<std::string> AdaptiveLimiter::try_admit(std::uint32_t load) {
  auto current = in_flight_.load(std::memory_order_relaxed);
  for (;;) {
    const auto limit = limit_.load(std::memory_order_acquire);
    if (current >= limit) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return fmt::format("overloaded: {} in flight, adaptive limit {}; retry later", current, limit);
    }
    if (in_flight_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel,
                                         std::memory_order_relaxed))
      break;
  }
  accepted_.fetch_add(1, std::memory_order_relaxed);
  raise_to(peak_load_, load_.fetch_add(load, std::memory_order_relaxed) + load);
  return std::nullopt;
}

void AdaptiveLimiter::release(std::uint32_t load, TaskState outcome,
                              std::chrono::nanoseconds latency) noexcept {
  // Counted before this request leaves, so a request that ran alone reports 1.
  const auto in_flight = in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  load_.fetch_sub(load, std::memory_order_relaxed);
  switch (outcome) {
    case TaskState::succeeded:
      record({.rtt = latency, .in_flight = in_flight, .dropped = false});
      break;
    case TaskState::failed:
    case TaskState::timed_out:
      record({.rtt = latency, .in_flight = in_flight, .dropped = true});
      break;
    default:  // cancelled, or refused a queue slot after admission: says nothing about the service
      break;
  }
}

void AdaptiveLimiter::record(const LimitSample& sample) noexcept {
  bool changed = false;
  {
    std::lock_guard lock(algorithm_mutex_);
    try {
      const auto next = std::max<std::size_t>(1, algorithm_->update(sample));
      changed = next != limit_.load(std::memory_order_relaxed);
      limit_.store(next, std::memory_order_release);
    } catch (const std::exception& e) {
      logger()->error("adaptive limiter: the limit algorithm threw, sample ignored: {}", e.what());
    } catch (...) {
      logger()->error("adaptive limiter: the limit algorithm threw a non-standard exception, sample ignored");
    }
  }
  if (changed) notify_listeners();
}

AdaptiveLimiter::ListenerId AdaptiveLimiter::on_limit_change(LimitListener listener) {
  std::lock_guard lock(listeners_mutex_);
  const auto id = next_listener_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void AdaptiveLimiter::remove_listener(ListenerId id) {
  std::lock_guard lock(listeners_mutex_);
  listeners_.erase(id);
}

void AdaptiveLimiter::notify_listeners() noexcept {
  // Read the limit under the listeners' lock, not when it changed: two updates racing on two threads would
  // otherwise be able to deliver their values out of order and leave a follower on a stale limit.
  std::lock_guard lock(listeners_mutex_);
  const auto current = limit_.load(std::memory_order_acquire);
  if (current == last_notified_) return;
  last_notified_ = current;
  for (auto& [id, listener] : listeners_) {
    try {
      listener(current);
    } catch (const std::exception& e) {
      logger()->error("adaptive limiter: limit listener {} threw: {}", id, e.what());
    } catch (...) {
      logger()->error("adaptive limiter: limit listener {} threw a non-standard exception", id);
    }
  }
}

namespace {
std::int64_t clamp_to_int64(std::size_t n) noexcept {
  return static_cast<std::int64_t>(std::min<std::size_t>(n, std::numeric_limits<std::int64_t>::max()));
}
}  // namespace

AdmissionStats AdaptiveLimiter::stats() const {
  return {.load = load_.load(std::memory_order_relaxed),
          .peak_load = peak_load_.load(std::memory_order_relaxed),
          .limit = clamp_to_int64(limit()),  // an AIMD max_limit of SIZE_MAX read -1
          .in_flight = clamp_to_int64(in_flight()),
          .accepted = accepted_.load(std::memory_order_relaxed),
          .rejected = rejected_.load(std::memory_order_relaxed)};
}

}  // namespace taskhive
