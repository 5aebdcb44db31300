#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "taskhive/flow.hpp"
#include "taskhive/logging.hpp"

namespace taskhive::detail {

StagePermits::StagePermits(tbb::flow::receiver<int>& decrementer, const BoundedStageOptions& options)
    : decrementer_(decrementer),
      max_in_flight_(options.max_in_flight),
      busy_bound_(options.concurrency == tbb::flow::unlimited
                      ? options.max_in_flight
                      : std::min(options.concurrency, options.max_in_flight)),
      capacity_(options.initial_capacity == 0 ? options.max_in_flight : options.initial_capacity) {
  // Exact here: the limiter has no edges yet, so no item holds a permit and the hold cannot hit its cap.
  held_ = max_in_flight_ - capacity_.load(std::memory_order_relaxed);
  if (held_ > 0) decrementer_.try_put(-static_cast<int>(held_));
}

void StagePermits::enter() noexcept {
  const auto now = inside_.fetch_add(1, std::memory_order_acq_rel) + 1;
  auto peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void StagePermits::leave() {
  bool kept = false;
  if (owed_.load(std::memory_order_acquire) > 0) {
    std::lock_guard lock(mutex_);
    if (const auto owed = owed_.load(std::memory_order_relaxed); owed > 0) {
      owed_.store(owed - 1, std::memory_order_relaxed);
      ++held_;
      kept = true;
    }
  }
  inside_.fetch_sub(1, std::memory_order_acq_rel);
  // Outside any lock: the decrement may forward the next item at once, running the source's body inline.
  if (!kept) decrementer_.try_put(1);
}

void StagePermits::set_capacity(std::size_t capacity) {
  if (capacity == 0 || capacity > max_in_flight_) {
    throw std::out_of_range(fmt::format("BoundedStage: capacity {} is outside 1..{} (its max_in_flight)",
                                        capacity, max_in_flight_));
  }
  // Serialised so that held_ always matches what the limiter holds while the bound below is computed.
  std::lock_guard resize(resize_mutex_);
  int decrement = 0;
  {
    std::lock_guard lock(mutex_);
    capacity_.store(capacity, std::memory_order_release);
    const std::size_t target = max_in_flight_ - capacity;
    const std::size_t owed = owed_.load(std::memory_order_relaxed);
    const std::size_t committed = held_ + owed;
    if (target > committed) {
      // The limiter counts items inside plus permits held, and caps that count at max_in_flight: a negative
      // decrement larger than the free permits is partly lost, with no way to tell how much. At most
      // busy_bound_ items can hold permits, so max_in_flight - held_ - busy_bound_ permits are certainly
      // free; take those now and the rest from items as they leave.
      const std::size_t certainly_free =
          max_in_flight_ - held_ > busy_bound_ ? max_in_flight_ - held_ - busy_bound_ : 0;
      const std::size_t wanted = owed + (target - committed);
      const std::size_t now = std::min(wanted, certainly_free);
      held_ += now;
      owed_.store(wanted - now, std::memory_order_release);
      // Put under the lock: were a leaving item to keep its permit (owed_ > 0) between publishing owed_ and
      // this put, the limiter would have fewer free permits than `now` and silently drop part of it. A
      // negative decrement never forwards an item inline, so it cannot re-enter leave().
      if (now > 0) decrementer_.try_put(-static_cast<int>(now));
    } else if (target < committed) {
      // Forgive permits not yet taken first; give back held ones for the rest (exact: they are held).
      std::size_t give_back = committed - target;
      const std::size_t forgiven = std::min(give_back, owed);
      owed_.store(owed - forgiven, std::memory_order_release);
      give_back -= forgiven;
      held_ -= give_back;
      decrement = static_cast<int>(give_back);
    }
  }
  // Outside the lock: giving permits back may forward the next item at once, running a body that leave()s.
  if (decrement > 0) decrementer_.try_put(decrement);
}

std::size_t StagePermits::held_back() const {
  std::lock_guard lock(mutex_);
  return held_;
}

void report_error_handler_failure(std::exception_ptr error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    logger()->error("flow stage: the error handler threw, exception dropped: {}", e.what());
  } catch (...) {
    logger()->error("flow stage: the error handler threw a non-standard exception, dropped");
  }
}

}  // namespace taskhive::detail
