#include "taskhive/workflow.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <ostream>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "taskhive/plugin_abi.h"
#include "taskhive/plugin_catalog.hpp"
#include "taskhive/scheduler.hpp"

namespace taskhive {

namespace detail {

namespace {

std::int64_t to_ns(Clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Clock::time_point from_ns(std::int64_t ns) noexcept {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

WorkflowTaskState from_task_state(TaskState state) noexcept {
  switch (state) {
    case TaskState::succeeded:
      return WorkflowTaskState::succeeded;
    case TaskState::cancelled:
      return WorkflowTaskState::cancelled;
    case TaskState::timed_out:
      return WorkflowTaskState::timed_out;
    default:  // failed, and rejected: the task could not run, which is a failure of the workflow
      return WorkflowTaskState::failed;
  }
}

bool is_failure(WorkflowTaskState state) noexcept {
  return state == WorkflowTaskState::failed || state == WorkflowTaskState::timed_out;
}

bool is_ended(WorkflowTaskState state) noexcept {
  return state != WorkflowTaskState::pending && state != WorkflowTaskState::running;
}

// Calls a plugin's task kind. The lease lives until run() returns, so a hot reload meanwhile serves new
// leases from the new version and leaves this one loaded.
void run_plugin_task(PluginCatalog* catalog, const WorkflowTask& task) {
  const PluginRef& ref = *task.uses;
  if (catalog == nullptr) {
    throw std::runtime_error(
        fmt::format("no plugin catalog was given to run '{}' (WorkflowOptions::catalog)", ref.text()));
  }
  auto lease = catalog->lease(ref.plugin);
  if (!lease)
    throw std::runtime_error(fmt::format("plugin '{}' is not usable: {}", ref.plugin, lease.error()));
  const taskhive_plugin_descriptor* descriptor = lease->descriptor();
  const taskhive_stage_kind* kind = nullptr;
  for (std::size_t k = 0; k < descriptor->kind_count; ++k) {
    if (ref.kind == descriptor->kinds[k].name) kind = &descriptor->kinds[k];
  }
  if (kind == nullptr || kind->type != TASKHIVE_KIND_TASK || kind->run == nullptr) {
    throw std::runtime_error(fmt::format("plugin '{}' has no task kind '{}'", ref.plugin, ref.kind));
  }
  std::vector<taskhive_kv> params;
  params.reserve(task.params.size());
  for (const auto& [key, value] : task.params) params.push_back({key.c_str(), value.value.c_str()});
  taskhive_error error{};
  const std::int32_t status = kind->run(params.data(), params.size(), &error);
  if (status == TASKHIVE_OK) return;
  // The plugin promises a NUL-terminated message, but a host does not trust a plugin's buffer further than
  // its size.
  std::string message(error.message, strnlen(error.message, sizeof error.message));
  if (message.empty()) message = fmt::format("{} failed with status {}", ref.text(), status);
  throw std::runtime_error(message);
}

}  // namespace

struct WorkflowNode {
  const WorkflowTask* task = nullptr;
  std::vector<std::size_t> dependencies;  // unique
  std::vector<std::size_t> dependents;
  std::atomic<std::size_t> remaining{0};  // dependencies not ended yet; the one that takes it to 0 releases
  std::atomic<std::int64_t> first_start_ns{0};
  // Guarded by WorkflowState::mutex_.
  TaskHandle handle{};
  WorkflowTaskResult result{};
};

class WorkflowState : public std::enable_shared_from_this<WorkflowState> {
 public:
  WorkflowState(Scheduler& scheduler, Workflow workflow, WorkflowOptions options)
      : scheduler_(scheduler),
        clock_(scheduler.options().clock),
        workflow_(std::move(workflow)),
        options_(std::move(options)),
        nodes_(workflow_.tasks.size()) {
    auto& index = index_;
    for (std::size_t i = 0; i < workflow_.tasks.size(); ++i) {
      const std::string& name = *workflow_.tasks[i].name;
      if (name.empty()) throw std::invalid_argument(fmt::format("workflow task {} has no name", i + 1));
      if (!index.emplace(name, i).second) {
        throw std::invalid_argument(fmt::format("two workflow tasks are named '{}'", name));
      }
      nodes_[i].task = &workflow_.tasks[i];
      nodes_[i].result.name = name;
    }
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      std::set<std::size_t> unique;
      for (const auto& dependency : workflow_.tasks[i].depends_on) {
        auto it = index.find(*dependency);
        if (it == index.end()) {
          throw std::invalid_argument(fmt::format("workflow task '{}' depends on an unknown task '{}'",
                                                  nodes_[i].result.name, *dependency));
        }
        unique.insert(it->second);
      }
      nodes_[i].dependencies.assign(unique.begin(), unique.end());
      for (auto d : unique) nodes_[d].dependents.push_back(i);
      nodes_[i].remaining.store(unique.size(), std::memory_order_relaxed);
    }
    check_acyclic();
  }

  void start() {
    std::vector<std::size_t> roots;
    {
      std::lock_guard lock(mutex_);
      if (started_) throw std::logic_error("WorkflowRunner::start() called twice");
      started_ = true;
      started_at_ = clock_->now();
      for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i].dependencies.empty()) roots.push_back(i);
      }
      if (nodes_.empty()) {
        finished_at_ = started_at_;
        cv_.notify_all();
      }
    }
    settle(std::move(roots));
  }

  void stop() {
    std::vector<TaskHandle> running;
    std::vector<std::size_t> parked;
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
      for (auto& node : nodes_) {
        if (node.handle.valid() && !is_ended(node.result.state)) running.push_back(node.handle);
      }
      parked.swap(parked_);
      for (auto i : parked) {
        nodes_[i].result.state = WorkflowTaskState::cancelled;
        nodes_[i].result.error = "cancelled before it started: the workflow was stopped";
      }
    }
    // Outside the lock: cancelling a queued task ends it here, and its on_final takes the lock.
    for (auto& handle : running) handle.cancel();
    for (auto i : parked) {
      std::vector<std::size_t> ready;
      finish_node(i, nodes_[i].result, ready);
      settle(std::move(ready));
    }
  }

  WorkflowResult wait() {
    std::unique_lock lock(mutex_);
    for (;;) {
      // Tasks refused for want of queue room while nothing else of the workflow runs would wait for ever:
      // this thread, which is no worker, submits them and waits for room.
      cv_.wait(lock, [&] { return ended_ == nodes_.size() || (!parked_.empty() && !stopped_); });
      if (ended_ == nodes_.size()) break;
      lock.unlock();
      resubmit_parked(/*blocking=*/true);
      lock.lock();
    }
    WorkflowResult result;
    result.success = true;
    for (const auto& node : nodes_) {
      result.tasks.push_back(node.result);
      const auto state = node.result.state;
      if (is_failure(state) || state == WorkflowTaskState::cancelled) result.success = false;
    }
    result.elapsed = finished_at_ - started_at_;
    return result;
  }

  bool started() const {
    std::lock_guard lock(mutex_);
    return started_;
  }

  bool done() const {
    std::lock_guard lock(mutex_);
    return started_ && ended_ == nodes_.size();
  }

  TaskHandle handle(std::string_view name) const {
    std::lock_guard lock(mutex_);
    auto it = index_.find(name);
    return it == index_.end() ? TaskHandle() : nodes_[it->second].handle;
  }

 private:
  void check_acyclic() const {
    // Kahn's algorithm: whatever is never freed of its dependencies is on (or behind) a cycle, and would
    // leave wait() blocked for ever.
    std::vector<std::size_t> remaining(nodes_.size());
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      remaining[i] = nodes_[i].dependencies.size();
      if (remaining[i] == 0) ready.push_back(i);
    }
    std::size_t seen = 0;
    while (!ready.empty()) {
      const auto i = ready.back();
      ready.pop_back();
      ++seen;
      for (auto d : nodes_[i].dependents) {
        if (--remaining[d] == 0) ready.push_back(d);
      }
    }
    if (seen == nodes_.size()) return;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (remaining[i] != 0) {
        throw std::invalid_argument(
            fmt::format("workflow task '{}' is on or behind a dependency cycle", nodes_[i].result.name));
      }
    }
  }

  // Decides each ready task: skip it, cancel it, or submit it. A worklist rather than recursion, so a long
  // chain of skipped tasks does not grow the stack.
  void settle(std::vector<std::size_t> ready) {
    // In order: roots and dependents are submitted in the workflow's order, which the queue keeps among
    // equal priorities.
    for (std::size_t k = 0; k < ready.size(); ++k) {
      const auto i = ready[k];
      WorkflowNode& node = nodes_[i];
      std::optional<WorkflowTaskResult> ended;
      {
        std::lock_guard lock(mutex_);
        if (stopped_) {
          node.result.state = WorkflowTaskState::cancelled;
          node.result.error = "cancelled before it started: the workflow was stopped";
        } else if (auto reason = skip_reason(node)) {
          node.result.state = WorkflowTaskState::skipped;
          node.result.error = std::move(*reason);
        } else {
          node.result.state = WorkflowTaskState::running;
        }
        if (node.result.state != WorkflowTaskState::running) ended = node.result;
      }
      if (ended) {
        finish_node(i, *ended, ready);
      } else {
        submit(i);
      }
    }
  }

  // Why the task's `if:` is not met, given that all its dependencies ended; nothing when it is met.
  std::optional<std::string> skip_reason(const WorkflowNode& node) const {
    bool all_succeeded = true;
    bool any_failed = false;
    std::string states;
    for (auto d : node.dependencies) {
      const auto& dependency = nodes_[d].result;
      all_succeeded = all_succeeded && dependency.state == WorkflowTaskState::succeeded;
      any_failed = any_failed || is_failure(dependency.state);
      if (dependency.state != WorkflowTaskState::succeeded) {
        states +=
            fmt::format("{}{} {}", states.empty() ? "" : ", ", dependency.name, to_string(dependency.state));
      }
    }
    switch (*node.task->run_if) {
      case RunIf::success:
        if (all_succeeded) return std::nullopt;
        return fmt::format("not run: a dependency did not succeed ({})", states);
      case RunIf::failure:
        if (any_failed) return std::nullopt;
        return std::string(node.dependencies.empty() ? "not run: `if: failure` and it has no dependencies"
                                                     : "not run: `if: failure` and no dependency failed");
      case RunIf::always:
        return std::nullopt;
    }
    return std::nullopt;
  }

  // Submits the tasks refused for want of queue room again, in the order they were refused; `blocking`
  // waits for room (only off the workers), otherwise a task refused again is parked again.
  void resubmit_parked(bool blocking) {
    std::vector<std::size_t> again;
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;  // stop() ends the parked tasks
      again.swap(parked_);
    }
    for (auto i : again) submit(i, blocking);
  }

  void submit(std::size_t i, bool blocking = false) {
    const WorkflowTask& task = *nodes_[i].task;
    TaskOptions options;
    options.name = *task.name;
    options.priority = *task.priority;
    options.retry = to_retry_policy(task.retry);
    if (task.timeout->count() > 0) options.timeout = *task.timeout;
    // The callbacks hold the state strongly: the scheduler drops them once the task is final, and the state
    // must live until the last task has released its dependents, even if the runner is gone by then.
    options.on_final = [self = shared_from_this(), i](const TaskHandle& handle) {
      self->on_final(i, handle);
    };
    // try_submit: this runs in a finishing task's on_final, often on a worker; waiting there for queue room
    // could deadlock a scheduler whose workers all wait. A refusal for want of room parks the task (see
    // on_final); any other refusal fails it, with the reason.
    auto run = [self = shared_from_this(), i](TaskContext& ctx) { self->execute(i, ctx); };
    auto handle = blocking ? scheduler_.submit(std::move(run), std::move(options))
                           : scheduler_.try_submit(std::move(run), std::move(options));
    // A refused task was dealt with by on_final, inside the call: ended, or parked (and perhaps already taken
    // out and submitted again by another thread, whose handle must not be shadowed by this stale one).
    if (handle.state() == TaskState::rejected) return;
    bool cancel = false;
    {
      std::lock_guard lock(mutex_);
      if (!nodes_[i].handle.valid()) nodes_[i].handle = handle;  // on_final may have stored it first
      cancel = stopped_ && !is_ended(nodes_[i].result.state);    // stop() ran before the handle was here
    }
    if (cancel) handle.cancel();
  }

  void execute(std::size_t i, TaskContext& ctx) {
    WorkflowNode& node = nodes_[i];
    std::int64_t none = 0;
    node.first_start_ns.compare_exchange_strong(none, to_ns(clock_->now()), std::memory_order_acq_rel);
    const WorkflowTask& task = *node.task;
    if (task.uses) {
      run_plugin_task(options_.catalog, task);
    } else if (task.pipeline) {
      if (!options_.run_pipeline) {
        throw std::runtime_error("no pipeline runner was given (WorkflowOptions::run_pipeline)");
      }
      auto outcome = options_.run_pipeline(task, ctx);
      // A stop asked through ctx: the scheduler ends the task cancelled, or timed_out past its deadline.
      if (outcome.stopped_early) throw OperationCancelled(outcome.error);
      if (!outcome.ok)
        throw std::runtime_error(outcome.error.empty() ? "the pipeline failed" : outcome.error);
    } else {
      throw std::runtime_error("the task has neither `uses` nor `pipeline`");
    }
    // The timeout bounds the task, so a run that ends past it does not count as a success (a plugin's run()
    // cannot be interrupted; this is where its overrun shows).
    if (ctx.deadline_expired()) {
      throw OperationCancelled(fmt::format("ran past its timeout of {}", format_duration(*task.timeout)));
    }
  }

  void on_final(std::size_t i, const TaskHandle& handle) {
    WorkflowNode& node = nodes_[i];
    // Refused for want of queue room: not the task's end. It waits to be submitted again when one of the
    // workflow's tasks ends, or by the thread in wait().
    const bool refused_for_room = handle.reject_reason() == RejectReason::queue_full;
    if (refused_for_room) {
      std::lock_guard lock(mutex_);
      if (!stopped_) {
        node.handle = TaskHandle();
        parked_.push_back(i);
        cv_.notify_all();
        return;
      }
    }
    WorkflowTaskResult ended;
    {
      std::lock_guard lock(mutex_);
      auto& result = node.result;
      const auto state = handle.state();
      result.state = from_task_state(state);
      result.error = handle.error();
      if (state == TaskState::rejected) result.error = "the scheduler refused it: " + result.error;
      if (refused_for_room) {  // and the workflow stopped meanwhile: it would have waited, not failed
        result.state = WorkflowTaskState::cancelled;
        result.error = "cancelled before it started: the workflow was stopped";
      }
      result.attempts = handle.attempts();
      if (const auto first = node.first_start_ns.load(std::memory_order_acquire); first != 0) {
        result.started_at = from_ns(first);
      }
      result.finished_at = handle.finished_at();
      if (result.started_at && result.finished_at) result.duration = *result.finished_at - *result.started_at;
      // Kept for handle(): the scheduler dropped the callable and this callback, so nothing it holds points
      // back at this state.
      node.handle = handle;
      ended = result;
    }
    std::vector<std::size_t> ready;
    finish_node(i, ended, ready);
    settle(std::move(ready));
    resubmit_parked(/*blocking=*/false);  // a task of the workflow ended: the queue may have room again
  }

  // Reports an ended task, counts it, and collects the dependents it was the last dependency of.
  void finish_node(std::size_t i, const WorkflowTaskResult& ended, std::vector<std::size_t>& ready) {
    if (options_.on_task_end) {
      try {
        options_.on_task_end(ended);
      } catch (...) {
        // Progress output is not worth losing a run for.
      }
    }
    for (auto d : nodes_[i].dependents) {
      if (nodes_[d].remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) ready.push_back(d);
    }
    std::lock_guard lock(mutex_);
    if (++ended_ == nodes_.size()) {
      finished_at_ = clock_->now();
      cv_.notify_all();
    }
  }

  Scheduler& scheduler_;
  std::shared_ptr<Clock> clock_;
  Workflow workflow_;
  WorkflowOptions options_;
  std::vector<WorkflowNode> nodes_;
  std::map<std::string, std::size_t, std::less<>> index_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool started_ = false;
  bool stopped_ = false;
  std::size_t ended_ = 0;
  std::vector<std::size_t> parked_;  // refused for want of queue room, in that order (see on_final)
  Clock::time_point started_at_{};
  Clock::time_point finished_at_{};
};

}  // namespace detail

std::string_view to_string(WorkflowTaskState state) noexcept {
  switch (state) {
    case WorkflowTaskState::pending:
      return "pending";
    case WorkflowTaskState::running:
      return "running";
    case WorkflowTaskState::succeeded:
      return "succeeded";
    case WorkflowTaskState::failed:
      return "failed";
    case WorkflowTaskState::skipped:
      return "skipped";
    case WorkflowTaskState::cancelled:
      return "cancelled";
    case WorkflowTaskState::timed_out:
      return "timed_out";
  }
  return "unknown";
}

const WorkflowTaskResult* WorkflowResult::find(std::string_view name) const noexcept {
  for (const auto& task : tasks) {
    if (task.name == name) return &task;
  }
  return nullptr;
}

std::size_t WorkflowResult::count(WorkflowTaskState state) const noexcept {
  return static_cast<std::size_t>(
      std::count_if(tasks.begin(), tasks.end(), [state](const auto& t) { return t.state == state; }));
}

RetryPolicy to_retry_policy(const RetryConfig& retry) noexcept {
  return RetryPolicy{.max_retries = *retry.limit,
                     .initial_delay = *retry.backoff.initial,
                     .multiplier = *retry.backoff.factor,
                     .max_delay = *retry.backoff.max,
                     .jitter = *retry.backoff.jitter};
}

WorkflowRunner::WorkflowRunner(Scheduler& scheduler, Workflow workflow, WorkflowOptions options)
    : state_(std::make_shared<detail::WorkflowState>(scheduler, std::move(workflow), std::move(options))) {}

WorkflowRunner::~WorkflowRunner() {
  if (!state_->started()) return;
  state_->stop();
  state_->wait();
}

void WorkflowRunner::start() {
  state_->start();
}

void WorkflowRunner::stop() {
  state_->stop();
}

WorkflowResult WorkflowRunner::wait() {
  if (!state_->started()) state_->start();
  return state_->wait();
}

WorkflowResult WorkflowRunner::run() {
  state_->start();
  return state_->wait();
}

bool WorkflowRunner::done() const {
  return state_->done();
}

TaskHandle WorkflowRunner::handle(std::string_view name) const {
  return state_->handle(name);
}

namespace {

std::string format_elapsed(std::chrono::nanoseconds d) {
  using namespace std::chrono;
  if (d < seconds(1)) return fmt::format("{}ms", duration_cast<milliseconds>(d).count());
  if (d < minutes(1)) return fmt::format("{:.2f}s", duration<double>(d).count());
  const auto total = duration_cast<seconds>(d).count();
  return fmt::format("{}m{:02}s", total / 60, total % 60);
}

}  // namespace

void print_summary(std::ostream& out, const WorkflowResult& result) {
  struct Row {
    std::string name, state, attempts, duration, error;
  };
  std::vector<Row> rows;
  std::size_t widths[4] = {0, 0, 0, 0};
  for (const auto& task : result.tasks) {
    Row row{task.name, std::string(to_string(task.state)), "", "", task.error};
    if (task.attempts > 0)
      row.attempts = fmt::format("{} attempt{}", task.attempts, task.attempts == 1 ? "" : "s");
    if (task.started_at) row.duration = format_elapsed(task.duration);
    // One line per task: a multi-line message (a plugin's, say) is folded so the columns stay aligned.
    std::replace(row.error.begin(), row.error.end(), '\n', ' ');
    widths[0] = std::max(widths[0], row.name.size());
    widths[1] = std::max(widths[1], row.state.size());
    widths[2] = std::max(widths[2], row.attempts.size());
    widths[3] = std::max(widths[3], row.duration.size());
    rows.push_back(std::move(row));
  }
  for (const auto& row : rows) {
    // Durations align right, like numbers; the rest left.
    std::string line = fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>{}}  {}", row.name, widths[0], row.state,
                                   widths[1], row.attempts, widths[2], row.duration, widths[3], row.error);
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << '\n';
  }
  std::string totals;
  for (auto state : {WorkflowTaskState::succeeded, WorkflowTaskState::failed, WorkflowTaskState::timed_out,
                     WorkflowTaskState::cancelled, WorkflowTaskState::skipped, WorkflowTaskState::running,
                     WorkflowTaskState::pending}) {
    if (auto n = result.count(state); n > 0) {
      totals += fmt::format("{}{} {}", totals.empty() ? "" : ", ", n, to_string(state));
    }
  }
  if (totals.empty()) totals = "no tasks";
  out << fmt::format("workflow {}: {} in {}\n", result.success ? "succeeded" : "failed", totals,
                     format_elapsed(result.elapsed));
}

}  // namespace taskhive
