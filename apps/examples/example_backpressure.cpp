// Backpressure: the two ways taskhive keeps a fast producer from burying a slow consumer.
//
// 1. At the edge, lossy: an AdmissionController in front of a scheduler admits tasks while the load they hold
//    stays within max_load and rejects the rest at once, each with a reason, like an HTTP 503. After a
//    rejection it keeps refusing until a cooldown has passed AND the load has fallen below a low watermark,
//    so admission does not flap at the limit.
// 2. Inside a pipeline, lossless: a BoundedStage lets at most max_in_flight items into a slow stage; the
//    source is not asked for more until an item leaves, so nothing piles up and nothing is dropped.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <oneapi/tbb/flow_graph.h>

#include <taskhive/backpressure.hpp>
#include <taskhive/flow.hpp>
#include <taskhive/scheduler.hpp>

namespace {

using namespace std::chrono_literals;
using taskhive::TaskState;

bool ok = true;

void expect(bool condition, const std::string& what) {
  fmt::print("  {}: {}\n", condition ? "OK" : "FAILED", what);
  ok = ok && condition;
}

void admission_in_front_of_a_scheduler() {
  fmt::print("Admission control: max_load 10, tasks of load 3, the worker held busy\n");
  auto clock = std::make_shared<taskhive::ManualClock>();  // so the cooldown is shown without waiting
  auto admission = std::make_shared<taskhive::AdmissionController>(
      taskhive::AdmissionConfig{.max_load = 10, .cooldown = 1s, .low_watermark = 4}, clock);
  taskhive::Scheduler scheduler({.workers = 1, .clock = clock, .admission = admission});

  std::atomic<bool> release{false};
  std::vector<taskhive::TaskHandle> accepted;
  for (int i = 0; i < 3; ++i) {
    accepted.push_back(scheduler.try_submit([&] { release.wait(false); }, {.load = 3}));  // load 3, 6, 9
  }
  auto refused = scheduler.try_submit([] {}, {.load = 3});  // 9 + 3 > 10
  fmt::print("  4th task: {} ({})\n", taskhive::to_string(refused.state()), refused.error());
  expect(refused.error() == "overloaded: load 9 + 3 > max 10", "the 4th task is refused with the reason");

  release = true;
  release.notify_all();
  for (auto& h : accepted) h.wait();
  // The load is 0 now, below the watermark, but the cooldown has not passed: still refused.
  auto early = scheduler.try_submit([] {}, {.load = 3});
  fmt::print("  right after the burst: {} ({})\n", taskhive::to_string(early.state()), early.error());
  expect(early.state() == TaskState::rejected, "refused during the cooldown although the load fell");
  clock->advance(1s);
  auto later = scheduler.try_submit([] {}, {.load = 3});
  expect(later.wait() == TaskState::succeeded, "admitted again once the cooldown passed and the load is low");
  scheduler.wait_idle();
  const auto stats = *scheduler.metrics().admission;
  fmt::print("  admission: {} accepted, {} rejected, load now {}, peak {}\n", stats.accepted, stats.rejected,
             stats.load, stats.peak_load);
  expect(stats.load == 0, "every admitted task gave its load back");
}

void bounded_stage_in_a_flow_graph() {
  constexpr int kItems = 10'000;
  fmt::print("Bounded stage: a fast source, a slow stage with max_in_flight 4, {} items\n", kItems);
  tbb::flow::graph graph;
  int next = 0;
  std::atomic<int> produced{0};
  std::atomic<int> consumed{0};
  std::atomic<int> most_ahead{0};  // the most items produced and not yet consumed
  tbb::flow::input_node<int> source(graph, [&](tbb::flow_control& control) {
    if (next == kItems) {
      control.stop();
      return 0;
    }
    const int ahead = ++produced - consumed.load();
    int seen = most_ahead.load();
    while (ahead > seen && !most_ahead.compare_exchange_weak(seen, ahead)) {
    }
    return next++;
  });
  taskhive::BoundedStage<int, std::int64_t> square(
      graph, {.max_in_flight = 4}, [](const int& n, taskhive::StageOutput<std::int64_t>& out) {
        std::this_thread::yield();  // a slow stage
        out.emit(static_cast<std::int64_t>(n) * n);
      });
  std::int64_t sum = 0;
  tbb::flow::function_node<std::int64_t> sink(graph, tbb::flow::serial, [&](std::int64_t v) {
    sum += v;
    ++consumed;
  });
  tbb::flow::make_edge(source, square.input());
  tbb::flow::make_edge(square.output(), sink);
  source.activate();
  graph.wait_for_all();

  std::int64_t expected = 0;
  for (std::int64_t n = 0; n < kItems; ++n) expected += n * n;
  fmt::print("  peak inside the stage: {}, most produced ahead of the sink: {}, sum {}\n",
             square.peak_in_flight(), most_ahead.load(), sum);
  expect(square.peak_in_flight() <= 4, "never more than max_in_flight items inside the stage");
  expect(consumed == kItems && sum == expected, "every item arrived, none lost");
}

}  // namespace

int main() {
  admission_in_front_of_a_scheduler();
  bounded_stage_in_a_flow_graph();
  return ok ? 0 : 1;
}
