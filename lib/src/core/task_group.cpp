#include "taskhive/task_group.hpp"

#include <algorithm>

#include "group_state.hpp"
#include "scheduler_core.hpp"
#include "task_record.hpp"

namespace taskhive {

namespace detail {

bool GroupState::join(const std::shared_ptr<TaskRecord>& record) {
  std::lock_guard lock(mutex);
  if (cancelled.load(std::memory_order_acquire)) return false;
  if (members.size() >= prune_at) {
    std::erase_if(members, [](const std::weak_ptr<TaskRecord>& m) {
      auto alive = m.lock();
      return !alive || is_final(alive->state.load(std::memory_order_acquire));
    });
    prune_at = std::max<std::size_t>(64, members.size() * 2);
  }
  members.push_back(record);
  active.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

}  // namespace detail

TaskGroup::TaskGroup() : state_(std::make_shared<detail::GroupState>()) {}

void TaskGroup::cancel() {
  std::vector<std::weak_ptr<detail::TaskRecord>> members;
  {
    std::lock_guard lock(state_->mutex);
    // Once only: each member ended here runs its on_final, which may cancel the group again; walking the
    // list again from there cost memory and stack quadratic in the group's size.
    if (state_->cancelled.exchange(true, std::memory_order_acq_rel)) return;
    // Taken, not copied: join() admits no one from now on. Cancelled outside the lock: finishing a task
    // takes other locks.
    members.swap(state_->members);
  }
  for (auto& weak : members) {
    if (auto member = weak.lock()) detail::request_stop(member, detail::StopReason::cancelled);
  }
}

bool TaskGroup::cancelled() const noexcept {
  return state_->cancelled.load(std::memory_order_acquire);
}

std::size_t TaskGroup::active() const {
  return state_->active.load(std::memory_order_acquire);
}

}  // namespace taskhive
