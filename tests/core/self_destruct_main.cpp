// A program whose scheduler is destroyed on one of its own workers: the only task's callable holds the last
// reference to it, and finishing the task drops that reference there. Draining in that destructor would wait
// for the task it runs in, for ever; the scheduler logs why and terminates instead, which
// self_destruct_test.sh checks (exit by SIGABRT, the reason on stderr).
#include <atomic>
#include <memory>

#include "taskhive/scheduler.hpp"

int main() {
  auto scheduler =
      std::make_shared<taskhive::Scheduler>(taskhive::SchedulerOptions{.workers = 1, .name = "doomed"});
  std::atomic<bool> released{false};
  auto task = scheduler->submit([keep = scheduler, &released] { released.wait(false); });
  scheduler.reset();  // the task's callable now holds the last reference
  released = true;
  released.notify_all();
  task.wait();  // never returns: the worker terminates the process while finishing the task
  return 0;
}
