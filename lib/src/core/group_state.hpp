#pragma once
// GroupState: the shared state behind a TaskGroup.

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace taskhive::detail {

struct TaskRecord;

struct GroupState {
  std::atomic<bool> cancelled{false};
  std::atomic<std::size_t> active{0};
  std::mutex mutex;
  std::vector<std::weak_ptr<TaskRecord>> members;  // guarded by mutex; pruned of finished tasks as it grows
  std::size_t prune_at = 64;                       // guarded by mutex

  /// Adds a member; returns false (adding nothing) if the group is already cancelled.
  bool join(const std::shared_ptr<TaskRecord>& record);
  void leave() noexcept { active.fetch_sub(1, std::memory_order_acq_rel); }
};

}  // namespace taskhive::detail
