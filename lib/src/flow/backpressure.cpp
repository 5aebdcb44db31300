#include "taskhive/backpressure.hpp"

#include <algorithm>
#include <cassert>
#include <limits>

#include <fmt/format.h>

#include "../core/time_math.hpp"

namespace taskhive {
namespace detail {
namespace {

std::int64_t to_ns(Clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

/// "3.2 s", "250 ms", "80 µs": a wait as a person reads it.
std::string describe_duration(std::chrono::nanoseconds d) {
  const double ns = static_cast<double>(std::max<std::int64_t>(d.count(), 0));
  if (ns >= 100e9) return fmt::format("{:.0f} s", ns / 1e9);
  if (ns >= 1e9) return fmt::format("{:.2g} s", ns / 1e9);
  if (ns >= 1e6) return fmt::format("{:.3g} ms", ns / 1e6);
  return fmt::format("{:.3g} µs", ns / 1e3);
}

std::int64_t resolve_low_watermark(const AdmissionConfig& config) {
  if (config.max_load <= 0) {
    throw std::invalid_argument(
        fmt::format("AdmissionConfig: max_load must be greater than 0 (it is {})", config.max_load));
  }
  // Room for one more uint32 weight on top of max_load, so `load + weight` can never overflow.
  constexpr auto kMaxLoad = std::numeric_limits<std::int64_t>::max() / 2;
  if (config.max_load > kMaxLoad) {
    throw std::invalid_argument(
        fmt::format("AdmissionConfig: max_load {} is too large (at most {})", config.max_load, kMaxLoad));
  }
  if (config.cooldown.count() < 0) {
    throw std::invalid_argument(
        fmt::format("AdmissionConfig: cooldown must not be negative (it is {} ns)", config.cooldown.count()));
  }
  const auto low = config.low_watermark.value_or(std::max<std::int64_t>(1, config.max_load / 2));
  if (low < 1 || low > config.max_load) {
    // A watermark of 0 would never be reached ("load below 0"), so admission would never resume.
    throw std::invalid_argument(fmt::format(
        "AdmissionConfig: low_watermark must be between 1 and max_load {} (it is {})", config.max_load, low));
  }
  return low;
}

}  // namespace
}  // namespace detail

AdmissionController::AdmissionController(AdmissionConfig config, std::shared_ptr<Clock> clock)
    : config_(config),
      low_watermark_(detail::resolve_low_watermark(config)),
      clock_(clock ? std::move(clock) : Clock::steady()) {}

AdmissionController::~AdmissionController() {
  // A permit outliving its controller would write to freed memory when it is released.
  assert(accepted_.load() == released_.load() && "AdmissionController destroyed with permits outstanding");
}

AdmissionResult<AdmissionController::Permit> AdmissionController::try_acquire(std::uint32_t load) {
  if (auto refusal = admit(load)) return AdmissionResult<Permit>::refused(std::move(*refusal));
  return Permit(this, load);
}

std::optional<std::string> AdmissionController::try_admit(std::uint32_t load) {
  return admit(load);
}

void AdmissionController::release(std::uint32_t load, TaskState, std::chrono::nanoseconds) noexcept {
  release_load(load);
}

std::optional<std::string> AdmissionController::admit(std::uint32_t weight) {
  const auto w = static_cast<std::int64_t>(weight);
  if (!config_.enabled) {
    note_peak(load_.fetch_add(w, std::memory_order_relaxed) + w);
    accepted_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  if (w > config_.max_load) {
    return refuse(fmt::format("refused: a load of {} exceeds max_load {} on its own, so it can never be "
                              "admitted; split the work or raise max_load",
                              w, config_.max_load),
                  detail::to_ns(clock_->now()));
  }
  auto current = load_.load(std::memory_order_relaxed);
  // Outside a cooldown this costs one read of a line the CAS below needs anyway; the clock is not read.
  for (auto until = cooling_until_.load(std::memory_order_acquire); until != kNever;) {
    const auto now = detail::to_ns(clock_->now());
    if (auto refusal = check_cooldown(current, until, now)) return refuse(std::move(*refusal), now);
    // Both halves are met: end the cooldown. If the CAS fails, a new rejection started another one (or
    // another thread ended this one): look again.
    if (cooling_until_.compare_exchange_weak(until, kNever, std::memory_order_acq_rel)) break;
    current = load_.load(std::memory_order_relaxed);
  }
  do {
    if (current + w > config_.max_load) {
      const auto now = detail::to_ns(clock_->now());
      // Only the first rejection starts a cooldown; later ones, until it ends, do not move it.
      std::int64_t none = kNever;
      cooling_until_.compare_exchange_strong(none, cooldown_end(now), std::memory_order_acq_rel);
      return refuse(fmt::format("overloaded: load {} + {} > max {}", current, w, config_.max_load), now);
    }
  } while (!load_.compare_exchange_weak(current, current + w, std::memory_order_relaxed));
  accepted_.fetch_add(1, std::memory_order_relaxed);
  note_peak(current + w);
  return std::nullopt;
}

std::int64_t AdmissionController::cooldown_end(std::int64_t now) const noexcept {
  // Saturating: a cooldown of nanoseconds::max() lasts for ever rather than wrapping into the past.
  return detail::saturating_add(now, config_.cooldown.count());
}

std::optional<std::string> AdmissionController::check_cooldown(std::int64_t load_now,
                                                               std::int64_t cooling_until,
                                                               std::int64_t now) const {
  if (now < cooling_until) {
    const auto left =
        detail::describe_duration(std::chrono::nanoseconds(detail::saturating_sub(cooling_until, now)));
    if (load_now >= low_watermark_) {
      return fmt::format("overloaded: cooling down for {} more after a rejection (load {}, resumes below {})",
                         left, load_now, low_watermark_);
    }
    return fmt::format("overloaded: cooling down for {} more after a rejection (load {})", left, load_now);
  }
  if (load_now >= low_watermark_) {
    const auto since = detail::describe_duration(std::chrono::nanoseconds(
        detail::saturating_add(detail::saturating_sub(now, cooling_until), config_.cooldown.count())));
    return fmt::format(
        "overloaded: load {} must fall below {} before new work is admitted again (cooling down since a "
        "rejection {} ago)",
        load_now, low_watermark_, since);
  }
  return std::nullopt;
}

bool AdmissionController::should_reject(std::uint32_t weight) const {
  if (!config_.enabled) return false;
  const auto w = static_cast<std::int64_t>(weight);
  if (w > config_.max_load) return true;
  const auto current = load_.load(std::memory_order_relaxed);
  if (const auto until = cooling_until_.load(std::memory_order_acquire); until != kNever) {
    const auto now = detail::to_ns(clock_->now());
    if (now < until || current >= low_watermark_) return true;
  }
  return current + w > config_.max_load;
}

std::string AdmissionController::refuse(std::string reason, std::int64_t now) noexcept {
  rejected_.fetch_add(1, std::memory_order_relaxed);
  last_rejection_.store(now, std::memory_order_relaxed);
  return reason;
}

void AdmissionController::note_peak(std::int64_t load) noexcept {
  auto peak = peak_.load(std::memory_order_relaxed);
  while (load > peak && !peak_.compare_exchange_weak(peak, load, std::memory_order_relaxed)) {
  }
}

std::optional<Clock::time_point> AdmissionController::last_rejection() const noexcept {
  const auto ns = last_rejection_.load(std::memory_order_relaxed);
  if (ns == kNever) return std::nullopt;
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

AdmissionStats AdmissionController::stats() const {
  AdmissionStats s;
  // Read apart, the two counts can be momentarily out of step under load; exact at quiescence.
  const auto released = released_.load(std::memory_order_relaxed);
  s.accepted = accepted_.load(std::memory_order_relaxed);
  s.rejected = rejected_.load(std::memory_order_relaxed);
  s.load = load_.load(std::memory_order_relaxed);
  s.peak_load = peak_.load(std::memory_order_relaxed);
  s.limit = config_.max_load;
  s.in_flight = s.accepted >= released ? static_cast<std::int64_t>(s.accepted - released) : 0;
  return s;
}

}  // namespace taskhive
