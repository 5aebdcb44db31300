// Links the installed package, runs a few tasks and loads a plugin built with the package's
// taskhive_add_plugin(): proves headers, library, dependencies and the plugin helper install together.
#include <taskhive/loader.hpp>
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
  if (ran.load() != 100) return 1;

  auto plugins = taskhive::load_plugins({.dirs = {CONSUMER_PLUGIN_DIR}});
  if (!plugins) {
    std::printf("load_plugins failed: %s\n", plugins.error().c_str());
    return 1;
  }
  for (const auto& record : plugins->records()) {
    std::printf("plugin %s: %s %s\n", record.path.c_str(),
                std::string(taskhive::to_string(record.status)).c_str(), record.reason.c_str());
  }
  if (plugins->descriptor("consumer_upper") == nullptr) return 1;
  std::printf("consumer loaded its plugin\n");
  return 0;
}
