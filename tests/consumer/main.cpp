// Links the installed package and runs a few tasks: proves headers, library and dependencies install
// together.
#include <taskhive/scheduler.hpp>

#include <atomic>
#include <cstdio>

int main() {
  std::atomic<int> ran{0};
  {
    taskhive::Scheduler scheduler({.workers = 2});
    for (int i = 0; i < 100; ++i) scheduler.submit([&] { ran.fetch_add(1); }, {.priority = i % 3});
    scheduler.shutdown();
    const auto m = scheduler.metrics();
    if (m.succeeded != 100) return 1;
  }
  std::printf("consumer ran %d tasks\n", ran.load());
  return ran.load() == 100 ? 0 : 1;
}
