#pragma once
// TaskGroup: tasks that are cancelled together.

#include <cstddef>
#include <memory>

namespace taskhive {

namespace detail {
struct GroupState;
}

/// A set of tasks that cancel together, like the children of one Go context.
///
/// @code
///   taskhive::TaskGroup crawl;
///   for (auto& url : urls) scheduler.submit(fetch(url), {.group = crawl});
///   crawl.cancel();              // queued members end cancelled; running ones see cancellation_requested()
/// @endcode
///
/// A value type sharing one state: copies refer to the same group, and so does a moved-from group (a move
/// copies). Thread-safe. A task submitted into a group that is already cancelled ends cancelled without
/// running.
class TaskGroup {
 public:
  TaskGroup();
  // Declared so that no move constructor is: a move copies, and the source stays a usable handle.
  TaskGroup(const TaskGroup&) = default;
  TaskGroup& operator=(const TaskGroup&) = default;
  ~TaskGroup() = default;

  /// Cancels every member (as TaskHandle::cancel does) and every later member. Idempotent: once the group is
  /// cancelled, a later call (from a member's on_final, say: "first result wins") returns at once, and the
  /// first call is the one that asks the members to stop.
  void cancel();
  bool cancelled() const noexcept;

  /// Members not yet final.
  std::size_t active() const;

  const std::shared_ptr<detail::GroupState>& state() const noexcept { return state_; }

 private:
  std::shared_ptr<detail::GroupState> state_;
};

}  // namespace taskhive
