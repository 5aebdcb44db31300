// A program whose scheduler is destroyed while it ends one of its own tasks: the task's callable, or its
// on_final callback, holds the last reference to the scheduler, and ending the task drops it. Draining in
// that destructor would wait for the task it is ending, for ever; the scheduler logs why and terminates
// instead, which self_destruct_test.sh checks (an abnormal exit, the reason on stderr). How the task ends:
//   worker    it runs; a worker drops the callable
//   cancel    it is cancelled while queued; the thread calling cancel() drops the callable
//   on_final  it runs; its on_final callback drops the reference
#include <atomic>
#include <cstdio>
#include <memory>
#include <string_view>

#include "taskhive/scheduler.hpp"

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  auto scheduler =
      std::make_shared<taskhive::Scheduler>(taskhive::SchedulerOptions{.workers = 1, .name = "doomed"});
  std::atomic<bool> released{false};
  if (mode == "worker") {
    auto task = scheduler->submit([keep = scheduler, &released] { released.wait(false); });
    scheduler.reset();  // the task's callable now holds the last reference
    released = true;
    released.notify_all();
    task.wait();  // never returns: the worker terminates the process while finishing the task
  } else if (mode == "cancel") {
    auto blocker = scheduler->submit([&released] { released.wait(false); });  // keeps the next one queued
    auto queued = scheduler->submit([keep = scheduler] {});
    scheduler.reset();
    queued.cancel();  // ends it here, dropping its callable: terminates
    released = true;
    released.notify_all();
  } else if (mode == "on_final") {
    auto holder = std::make_shared<std::shared_ptr<taskhive::Scheduler>>(scheduler);
    std::atomic<bool> survived{false};  // set only if dropping the last reference did not end the process
    // The task waits until main has let go, so that on_final holds the last reference when it runs.
    auto task = scheduler->submit([&released] { released.wait(false); },
                                  {.on_final = [holder, &survived](const taskhive::TaskHandle&) {
                                    holder->reset();
                                    survived = true;
                                    survived.notify_all();
                                  }});
    scheduler.reset();
    released = true;
    released.notify_all();
    // Not task.wait() alone: the task is final before its on_final runs, and main returning 0 then raced
    // the worker's terminate (seen under ASan in CI).
    survived.wait(false);
  } else {
    std::fprintf(stderr, "usage: taskhive_self_destruct worker|cancel|on_final\n");
    return 2;
  }
  return 0;  // reached only if the scheduler was not destroyed where the mode says
}
