#include "taskhive/timer.hpp"

#include <pthread.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include "taskhive/logging.hpp"
#include "thread_name.hpp"
#include "time_math.hpp"

namespace taskhive {
namespace detail {

void set_current_thread_name(std::string_view name) noexcept {
  char buffer[16] = {};
  name.copy(buffer, sizeof(buffer) - 1);
  pthread_setname_np(pthread_self(), buffer);
}

struct TimerState {
  using Key = std::pair<Clock::time_point, TimerId>;  // due time, then scheduling order

  std::shared_ptr<Clock> clock;
  mutable std::mutex mutex;
  std::condition_variable wake;
  std::map<Key, std::function<void()>> due;              // guarded by mutex
  std::unordered_map<TimerId, Clock::time_point> index;  // guarded by mutex: id -> due time, for cancel()
  TimerId next_id = 1;                                   // guarded by mutex
  bool stopping = false;                                 // guarded by mutex
  Clock::SubscriptionId subscription = 0;
  std::thread thread;

  void run(const std::string& thread_name) {
    set_current_thread_name(thread_name);
    std::unique_lock lock(mutex);
    while (!stopping) {
      if (due.empty()) {
        wake.wait(lock);
        continue;
      }
      auto first = due.begin();
      if (clock->now() < first->first.first) {
        clock->wait_until(lock, wake, first->first.first);
        // A clock's wait_until may return at once (spurious returns are allowed); without a gap here such a
        // clock would keep the mutex from schedule_at() and cancel() for good.
        lock.unlock();
        std::this_thread::yield();
        lock.lock();
        continue;
      }
      auto callback = std::move(first->second);
      index.erase(first->first.second);
      due.erase(first);
      lock.unlock();
      try {
        callback();
      } catch (const std::exception& e) {
        logger()->error("timer callback threw: {}", e.what());
      } catch (...) {
        logger()->error("timer callback threw an exception not derived from std::exception");
      }
      callback = nullptr;  // release what it captured before taking the lock again
      lock.lock();
    }
  }
};

}  // namespace detail

Timer::Timer(std::shared_ptr<Clock> clock, std::string thread_name)
    : state_(std::make_shared<detail::TimerState>()) {
  auto* state = state_.get();
  state->clock = clock ? std::move(clock) : Clock::steady();
  // Unsubscribed in the destructor before the state can go: a raw pointer is enough here.
  state->subscription = state->clock->subscribe([state] {
    std::lock_guard lock(state->mutex);
    state->wake.notify_all();
  });
  state->thread = std::thread([keep = state_, name = std::move(thread_name)] { keep->run(name); });
}

Timer::~Timer() {
  state_->clock->unsubscribe(state_->subscription);
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    state_->wake.notify_all();
  }
  if (state_->thread.get_id() == std::this_thread::get_id()) {
    // Destroyed by one of its own callbacks: the thread cannot join itself. It holds the state, finishes
    // the callback, sees `stopping` and exits.
    state_->thread.detach();
  } else {
    state_->thread.join();
  }
}

TimerId Timer::schedule_at(Clock::time_point due, std::function<void()> callback) {
  std::lock_guard lock(state_->mutex);
  const TimerId id = state_->next_id++;
  const bool becomes_first = state_->due.empty() || due < state_->due.begin()->first.first;
  state_->due.emplace(detail::TimerState::Key{due, id}, std::move(callback));
  state_->index.emplace(id, due);
  if (becomes_first) state_->wake.notify_all();
  return id;
}

TimerId Timer::schedule_after(Clock::duration delay, std::function<void()> callback) {
  // Saturating: a retry's backoff may be nanoseconds::max() ("never"), which must not wrap into the past.
  return schedule_at(detail::saturating_add(state_->clock->now(), delay), std::move(callback));
}

bool Timer::cancel(TimerId id) {
  std::function<void()> discarded;  // destroyed after the lock is released
  std::lock_guard lock(state_->mutex);
  auto it = state_->index.find(id);
  if (it == state_->index.end()) return false;
  auto node = state_->due.extract(detail::TimerState::Key{it->second, id});
  state_->index.erase(it);
  discarded = std::move(node.mapped());
  return true;
}

std::size_t Timer::pending() const {
  std::lock_guard lock(state_->mutex);
  return state_->due.size();
}

const std::shared_ptr<Clock>& Timer::clock() const noexcept {
  return state_->clock;
}

}  // namespace taskhive
