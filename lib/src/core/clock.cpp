#include "taskhive/clock.hpp"

#include <chrono>

#include "time_math.hpp"

namespace taskhive {

std::shared_ptr<Clock> Clock::steady() {
  static const std::shared_ptr<Clock> instance = std::make_shared<SteadyClock>();
  return instance;
}

void SteadyClock::wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                             time_point deadline) const {
  cv.wait_until(lock, deadline);
}

ManualClock::ManualClock() : now_(std::chrono::duration_cast<duration>(std::chrono::hours(1)).count()) {}

void ManualClock::wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                             time_point deadline) const {
  // Time moves only in advance()/set(), which wake every subscriber; so waiting for a notification is enough.
  if (now() < deadline) cv.wait(lock);
}

Clock::SubscriptionId ManualClock::subscribe(std::function<void()> on_jump) {
  std::lock_guard lock(subscribers_mutex_);
  const auto id = next_id_++;
  subscribers_.emplace(id, std::move(on_jump));
  return id;
}

void ManualClock::unsubscribe(SubscriptionId id) {
  std::lock_guard lock(subscribers_mutex_);
  subscribers_.erase(id);
}

void ManualClock::advance(duration d) {
  if (d <= duration::zero()) return;
  // Saturating: a wrapped sum would move a monotonic clock back to before every deadline set so far.
  auto current = now_.load(std::memory_order_acquire);
  while (!now_.compare_exchange_weak(current, detail::saturating_add(current, d.count()),
                                     std::memory_order_acq_rel)) {
  }
  notify_subscribers();
}

void ManualClock::set(time_point t) {
  auto current = now_.load(std::memory_order_acquire);
  while (t.time_since_epoch().count() > current) {
    if (now_.compare_exchange_weak(current, t.time_since_epoch().count(), std::memory_order_acq_rel)) break;
  }
  notify_subscribers();
}

void ManualClock::notify_subscribers() {
  // Held while calling so that unsubscribe() returning means the callback is not running.
  std::lock_guard lock(subscribers_mutex_);
  for (auto& [id, callback] : subscribers_) callback();
}

}  // namespace taskhive
