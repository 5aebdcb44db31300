// Cancellation: four ways a task can be stopped, and the final state and error() each one leaves.
//
//   1. TaskHandle::cancel() on a queued task: it ends cancelled at once and never runs.
//   2. TaskHandle::cancel() on a running task: cancellation is cooperative. The task is asked to stop, sees
//   it
//      when it polls ctx.throw_if_cancelled(), and the OperationCancelled it throws ends it cancelled.
//   3. TaskGroup::cancel(): every member, queued or running, is cancelled as in 1 and 2; later members too.
//   4. TaskOptions::timeout: when the deadline passes the task is asked to stop the same way, and ends
//      timed_out instead of cancelled.
//
// The scheduler has one worker, so "queued" and "running" are set up exactly (latches say when a task has
// started), and nothing depends on timing.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <taskhive/scheduler.hpp>
#include <taskhive/task_group.hpp>

namespace {

using namespace std::chrono_literals;
using taskhive::TaskState;

// Real work between polls: an FNV-1a hash over a small buffer. A long task should poll about this often.
std::uint64_t work_chunk(std::uint64_t seed) {
  std::uint64_t hash = 14695981039346656037ull ^ seed;
  for (int i = 0; i < 4096; ++i) {
    hash ^= static_cast<std::uint8_t>(i * 31 + seed);
    hash *= 1099511628211ull;
  }
  return hash;
}

// A long task that polls for cancellation between chunks of work. `started` tells main() it is running.
// (The 10 s cap only keeps a broken build from spinning forever; the checks then report the failure.)
auto long_task(std::latch* started) {
  return [started](taskhive::TaskContext& ctx) {
    if (started) started->count_down();
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    std::uint64_t hash = 0;
    while (std::chrono::steady_clock::now() < give_up) {
      ctx.throw_if_cancelled();  // throws OperationCancelled once cancel() is called or the deadline passes
      hash = work_chunk(hash);
    }
  };
}

bool ok = true;

void report(const taskhive::TaskHandle& task, TaskState expected) {
  const auto state = task.state();
  const bool good = state == expected;
  ok = ok && good;
  fmt::print("  {:<14} {:<10} error(): \"{}\"{}\n", task.name(), taskhive::to_string(state), task.error(),
             good ? "" : fmt::format("   <-- FAILED: expected {}", taskhive::to_string(expected)));
}

void expect(bool condition, const std::string& what) {
  fmt::print("  {}: {}\n", condition ? "OK" : "FAILED", what);
  ok = ok && condition;
}

}  // namespace

int main() {
  taskhive::Scheduler scheduler({.workers = 1, .name = "cancel"});

  fmt::print("1. Cancel a queued task\n");
  {
    std::latch started{1}, open{1};
    auto blocker = scheduler.submit(
        [&] {  // holds the only worker, so the next task stays queued
          started.count_down();
          open.wait();
        },
        {.name = "blocker"});
    started.wait();
    std::atomic<bool> ran{false};
    auto queued = scheduler.submit([&ran] { ran = true; }, {.name = "queued-job"});
    const bool accepted = queued.cancel();  // final at once: no need to wait
    open.count_down();
    blocker.wait();
    scheduler.wait_idle();
    report(queued, TaskState::cancelled);
    expect(accepted && !ran, "cancel() returned true and the task never ran");
  }

  fmt::print("\n2. Cancel a running task that polls ctx.throw_if_cancelled()\n");
  {
    std::latch started{1};
    auto running = scheduler.submit(long_task(&started), {.name = "long-scan"});
    started.wait();  // it is running now
    running.cancel();
    running.wait();
    report(running, TaskState::cancelled);
    expect(running.attempts() == 1, "it ran once and stopped at its next poll");
  }

  fmt::print("\n3. Cancel a TaskGroup: one member running, the others queued\n");
  {
    taskhive::TaskGroup crawl;
    std::latch started{1};
    std::vector<taskhive::TaskHandle> members;
    members.push_back(scheduler.submit(long_task(&started), {.name = "crawl-1", .group = crawl}));
    for (int i = 2; i <= 4; ++i) {
      members.push_back(
          scheduler.submit(long_task(nullptr), {.name = fmt::format("crawl-{}", i), .group = crawl}));
    }
    auto outsider = scheduler.submit([] {}, {.name = "not-in-group"});
    started.wait();  // crawl-1 is running; crawl-2..4 and not-in-group are queued behind it
    crawl.cancel();
    for (auto& m : members) m.wait();
    outsider.wait();
    for (auto& m : members) report(m, TaskState::cancelled);
    report(outsider, TaskState::succeeded);
    expect(crawl.cancelled() && crawl.active() == 0, "the group is cancelled and has no active members");
    // A cancelled group stays cancelled: a task submitted into it ends cancelled without running.
    auto late = scheduler.submit([] {}, {.name = "crawl-late", .group = crawl});
    report(late, TaskState::cancelled);
  }

  fmt::print("\n4. A task with a timeout that runs past it\n");
  {
    const auto begin = std::chrono::steady_clock::now();
    auto slow = scheduler.submit(long_task(nullptr), {.name = "slow-report", .timeout = 30ms});
    slow.wait();
    const auto took =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();
    report(slow, TaskState::timed_out);
    expect(took >= 30.0, fmt::format("it ended {:.1f} ms after submission (timeout 30 ms)", took));
  }

  scheduler.shutdown();
  const auto m = scheduler.metrics();
  fmt::print("\nmetrics: submitted {}, succeeded {}, cancelled {}, timed_out {}, failed {}\n", m.submitted,
             m.succeeded, m.cancelled, m.timed_out, m.failed);
  expect(m.submitted == m.finished(), "submitted == succeeded + failed + cancelled + timed_out");

  fmt::print("\n{}\n", ok ? "example_cancellation: all checks passed" : "example_cancellation: FAILED");
  return ok ? 0 : 1;
}
