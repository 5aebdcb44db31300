#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "plugins/temp_dir.hpp"
#include "support/gate.hpp"
#include "taskhive/config.hpp"
#include "taskhive/plugin_catalog.hpp"
#include "taskhive/scheduler.hpp"
#include "taskhive/workflow.hpp"

using namespace std::chrono_literals;
using taskhive::ManualClock;
using taskhive::PipelineOutcome;
using taskhive::RunIf;
using taskhive::Scheduler;
using taskhive::TaskContext;
using taskhive::Workflow;
using taskhive::WorkflowOptions;
using taskhive::WorkflowRunner;
using taskhive::WorkflowTask;
using taskhive::WorkflowTaskState;
using taskhive::test::Gate;
using taskhive::test::Signal;

namespace {

// A `pipeline:` task (its work is whatever the test's run_pipeline callback does for its name).
WorkflowTask task(std::string name, std::vector<std::string> depends_on = {}, RunIf run_if = RunIf::success) {
  WorkflowTask t;
  t.name.value = std::move(name);
  t.pipeline = taskhive::Pipeline{};
  t.pipeline->source.name.value = "src";
  for (auto& d : depends_on) t.depends_on.push_back({std::move(d), {}});
  t.run_if.value = run_if;
  return t;
}

// A `uses: wftest.KIND` task.
WorkflowTask plugin_task(std::string name, std::string kind, std::map<std::string, std::string> params) {
  WorkflowTask t;
  t.name.value = std::move(name);
  t.uses = taskhive::PluginRef{"wftest", std::move(kind), {}};
  for (auto& [k, v] : params) t.params[k].value = v;
  return t;
}

Workflow workflow(std::vector<WorkflowTask> tasks) {
  Workflow w;
  w.tasks = std::move(tasks);
  return w;
}

// Records the order tasks ran in; fails the tasks named in `failing`.
struct Recorder {
  std::mutex mutex;
  std::vector<std::string> order;
  std::vector<std::string> failing;

  taskhive::PipelineTaskRunner runner() {
    return [this](const WorkflowTask& t, TaskContext&) {
      std::lock_guard lock(mutex);
      order.push_back(*t.name);
      for (const auto& f : failing) {
        if (f == *t.name) return PipelineOutcome::failure(*t.name + " broke");
      }
      return PipelineOutcome::success();
    };
  }
  std::size_t position(const std::string& name) {
    std::lock_guard lock(mutex);
    for (std::size_t i = 0; i < order.size(); ++i) {
      if (order[i] == name) return i;
    }
    FAIL("task " << name << " did not run");
    return 0;
  }
};

WorkflowTaskState state_of(const taskhive::WorkflowResult& result, const std::string& name) {
  const auto* t = result.find(name);
  REQUIRE(t != nullptr);
  return t->state;
}

}  // namespace

TEST_CASE("a workflow runs its tasks in dependency order", "[workflow]") {
  Scheduler scheduler({.workers = 2});
  Recorder recorder;
  WorkflowOptions options;
  options.run_pipeline = recorder.runner();
  //   fetch -> build -> test ---> package
  //                  \-> lint -/
  WorkflowRunner runner(scheduler,
                        workflow({task("package", {"test", "lint"}), task("test", {"build"}),
                                  task("lint", {"build"}), task("build", {"fetch"}), task("fetch")}),
                        std::move(options));
  auto result = runner.run();
  CHECK(result.success);
  CHECK(runner.done());
  REQUIRE(recorder.order.size() == 5);
  CHECK(recorder.position("fetch") < recorder.position("build"));
  CHECK(recorder.position("build") < recorder.position("test"));
  CHECK(recorder.position("build") < recorder.position("lint"));
  CHECK(recorder.position("test") < recorder.position("package"));
  CHECK(recorder.position("lint") < recorder.position("package"));
  // Results keep the workflow's order.
  REQUIRE(result.tasks.size() == 5);
  CHECK(result.tasks[0].name == "package");
  for (const auto& t : result.tasks) {
    CHECK(t.state == WorkflowTaskState::succeeded);
    CHECK(t.attempts == 1);
    CHECK(t.error.empty());
    CHECK(t.started_at.has_value());
    CHECK(t.finished_at.has_value());
  }
  CHECK(result.count(WorkflowTaskState::succeeded) == 5);
}

TEST_CASE("a failed dependency skips `success` dependents and runs `failure` and `always` ones",
          "[workflow][if]") {
  Scheduler scheduler({.workers = 1});
  Recorder recorder;
  recorder.failing = {"build"};
  WorkflowOptions options;
  options.run_pipeline = recorder.runner();
  std::vector<std::string> ended;
  std::mutex ended_mutex;
  options.on_task_end = [&](const taskhive::WorkflowTaskResult& r) {
    std::lock_guard lock(ended_mutex);
    ended.push_back(r.name);
  };
  WorkflowRunner runner(
      scheduler,
      workflow({task("build"), task("deploy", {"build"}), task("notify", {"build"}, RunIf::failure),
                task("cleanup", {"build"}, RunIf::always),
                // after a skipped task: skipped is neither a success nor a failure
                task("announce", {"deploy"}), task("rollback", {"deploy"}, RunIf::failure),
                task("audit", {"deploy"}, RunIf::always),
                // a failure root has nothing that failed
                task("alarm", {}, RunIf::failure)}),
      std::move(options));
  auto result = runner.run();
  CHECK_FALSE(result.success);
  CHECK(state_of(result, "build") == WorkflowTaskState::failed);
  CHECK(result.find("build")->error == "build broke");
  CHECK(state_of(result, "deploy") == WorkflowTaskState::skipped);
  CHECK(result.find("deploy")->error == "not run: a dependency did not succeed (build failed)");
  CHECK(result.find("deploy")->attempts == 0);
  CHECK_FALSE(result.find("deploy")->started_at.has_value());
  CHECK(state_of(result, "notify") == WorkflowTaskState::succeeded);
  CHECK(state_of(result, "cleanup") == WorkflowTaskState::succeeded);
  CHECK(state_of(result, "announce") == WorkflowTaskState::skipped);
  CHECK(result.find("announce")->error == "not run: a dependency did not succeed (deploy skipped)");
  CHECK(state_of(result, "rollback") == WorkflowTaskState::skipped);
  CHECK(result.find("rollback")->error == "not run: `if: failure` and no dependency failed");
  CHECK(state_of(result, "audit") == WorkflowTaskState::succeeded);
  CHECK(state_of(result, "alarm") == WorkflowTaskState::skipped);
  CHECK(ended.size() == 8);
  CHECK(recorder.order.size() == 4);  // build, notify, cleanup, audit

  SECTION("skipped tasks alone do not fail a workflow") {
    Recorder ok;
    WorkflowOptions o;
    o.run_pipeline = ok.runner();
    WorkflowRunner second(scheduler, workflow({task("a"), task("on_failure", {"a"}, RunIf::failure)}),
                          std::move(o));
    auto r = second.run();
    CHECK(r.success);
    CHECK(state_of(r, "on_failure") == WorkflowTaskState::skipped);
  }
}

TEST_CASE("a task retries with the scheduler's backoff, then succeeds", "[workflow][retry]") {
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  std::atomic<int> runs{0};
  std::atomic<bool> attempts_counted{true};  // no CHECK on a worker: Catch2 assertions are not thread-safe
  WorkflowOptions options;
  options.run_pipeline = [&](const WorkflowTask& t, TaskContext& ctx) {
    if (*t.name != "flaky") return PipelineOutcome::success();
    if (ctx.attempt() != runs + 1) attempts_counted = false;
    return ++runs < 3 ? PipelineOutcome::failure("flaky") : PipelineOutcome::success();
  };
  auto flaky = task("flaky");
  flaky.retry.limit.value = 3;
  flaky.retry.backoff.initial.value = taskhive::ConfigDuration(1000);
  flaky.retry.backoff.jitter.value = false;
  WorkflowRunner runner(scheduler, workflow({flaky, task("after", {"flaky"})}), std::move(options));
  runner.start();
  for (int retry = 1; retry <= 2; ++retry) {
    // Time moves only once the task waits out its backoff in the timer: 1s, then 2s.
    for (;;) {
      const auto handle = runner.handle("flaky");
      if (handle.valid() && handle.attempts() == retry && handle.state() == taskhive::TaskState::retry_wait)
        break;
      std::this_thread::yield();
    }
    CHECK_FALSE(runner.done());
    clock->advance(std::chrono::seconds(retry));
  }
  auto result = runner.wait();
  CHECK(result.success);
  CHECK(result.find("flaky")->attempts == 3);
  CHECK(result.find("flaky")->duration == 3s);  // first start to end: the two backoffs
  CHECK(state_of(result, "after") == WorkflowTaskState::succeeded);
  CHECK(runs == 3);
  CHECK(attempts_counted);
}

TEST_CASE("a task that fails every allowed attempt ends failed with its last error", "[workflow][retry]") {
  Scheduler scheduler({.workers = 1});
  std::atomic<int> runs{0};
  WorkflowOptions options;
  options.run_pipeline = [&](const WorkflowTask&, TaskContext&) -> PipelineOutcome {
    throw std::runtime_error("attempt " + std::to_string(++runs));
  };
  auto broken = task("broken");
  broken.retry.limit.value = 2;
  broken.retry.backoff.initial.value = taskhive::ConfigDuration(0);
  WorkflowRunner runner(scheduler, workflow({broken}), std::move(options));
  auto result = runner.run();
  CHECK_FALSE(result.success);
  CHECK(result.tasks[0].state == WorkflowTaskState::failed);
  CHECK(result.tasks[0].attempts == 3);
  CHECK(result.tasks[0].error == "attempt 3");
}

TEST_CASE("the retry config maps onto the scheduler's retry policy", "[workflow][retry]") {
  taskhive::RetryConfig config;
  config.limit.value = 4;
  config.backoff.initial.value = taskhive::ConfigDuration(250);
  config.backoff.factor.value = 3.0;
  config.backoff.max.value = taskhive::ConfigDuration(10'000);
  config.backoff.jitter.value = false;
  const auto policy = taskhive::to_retry_policy(config);
  CHECK(policy.max_retries == 4);
  CHECK(policy.initial_delay == 250ms);
  CHECK(policy.multiplier == 3.0);
  CHECK(policy.max_delay == 10s);
  CHECK_FALSE(policy.jitter);
}

TEST_CASE("a task that outlives its timeout ends timed_out, which counts as a failure",
          "[workflow][timeout]") {
  auto clock = std::make_shared<ManualClock>();
  Scheduler scheduler({.workers = 1, .clock = clock});
  Signal started;
  Gate release;
  bool poll = true;
  WorkflowOptions options;
  options.run_pipeline = [&](const WorkflowTask& t, TaskContext& ctx) {
    if (*t.name != "slow") return PipelineOutcome::success();
    started.notify();
    release.wait();
    if (poll) ctx.throw_if_cancelled();  // a well-behaved runner notices; a careless one returns late
    return PipelineOutcome::success();
  };
  auto slow = task("slow");
  slow.timeout.value = taskhive::ConfigDuration(5000);

  SECTION("a runner that polls its context") {
    poll = true;
  }
  SECTION("a runner that returns late anyway") {
    poll = false;
  }

  WorkflowRunner runner(scheduler,
                        workflow({slow, task("next", {"slow"}), task("recover", {"slow"}, RunIf::failure)}),
                        std::move(options));
  runner.start();
  REQUIRE(started.wait_for_count(1));
  clock->advance(6s);
  release.open();
  auto result = runner.wait();
  CHECK_FALSE(result.success);
  CHECK(state_of(result, "slow") == WorkflowTaskState::timed_out);
  if (!poll) CHECK(result.find("slow")->error == "ran past its timeout of 5s");
  CHECK(state_of(result, "next") == WorkflowTaskState::skipped);
  CHECK(state_of(result, "recover") == WorkflowTaskState::succeeded);
}

TEST_CASE("`uses:` tasks call a plugin's task kind through a lease", "[workflow][plugin]") {
  taskhive::test::TempDir plugins;
  taskhive::test::install(std::string(TASKHIVE_WFTEST_PLUGIN_DIR) + "/wftest.so", plugins / "wftest.so");
  auto catalog = taskhive::PluginCatalog::open({.loader = {.dirs = {plugins.path()}}});
  INFO(catalog.error());
  REQUIRE(catalog);
  taskhive::test::TempDir out;
  const auto file = (out / "touched.txt").string();

  Scheduler scheduler({.workers = 1});
  WorkflowOptions options;
  options.catalog = catalog->get();
  WorkflowRunner runner(scheduler,
                        workflow({plugin_task("touch", "touch", {{"path", file}, {"text", "hello"}}),
                                  plugin_task("fail", "fail", {{"message", "the disk is full"}}),
                                  plugin_task("missing", "nope", {}),
                                  [] {
                                    auto t = plugin_task("unknown_plugin", "touch", {});
                                    t.uses->plugin = "no_such_plugin";
                                    return t;
                                  }()}),
                        std::move(options));
  auto result = runner.run();
  CHECK_FALSE(result.success);
  CHECK(state_of(result, "touch") == WorkflowTaskState::succeeded);
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "hello");
  CHECK(state_of(result, "fail") == WorkflowTaskState::failed);
  CHECK(result.find("fail")->error == "the disk is full");
  CHECK(state_of(result, "missing") == WorkflowTaskState::failed);
  CHECK(result.find("missing")->error == "plugin 'wftest' has no task kind 'nope'");
  CHECK(state_of(result, "unknown_plugin") == WorkflowTaskState::failed);
  CHECK_THAT(result.find("unknown_plugin")->error,
             Catch::StartsWith("plugin 'no_such_plugin' is not usable"));
}

TEST_CASE("`pipeline:` tasks run through the injected callback", "[workflow][pipeline]") {
  Scheduler scheduler({.workers = 1});

  SECTION("the callback sees the task and its pipeline; its error becomes the task's") {
    std::vector<std::string> sources;
    WorkflowOptions options;
    options.run_pipeline = [&](const WorkflowTask& t, TaskContext&) {
      sources.push_back(*t.pipeline->source.name);
      return *t.name == "bad" ? PipelineOutcome::failure("3 items dead-lettered")
                              : PipelineOutcome::success();
    };
    WorkflowRunner runner(scheduler, workflow({task("good"), task("bad", {"good"})}), std::move(options));
    auto result = runner.run();
    CHECK(sources == std::vector<std::string>{"src", "src"});
    CHECK(state_of(result, "good") == WorkflowTaskState::succeeded);
    CHECK(state_of(result, "bad") == WorkflowTaskState::failed);
    CHECK(result.find("bad")->error == "3 items dead-lettered");
  }
  SECTION("without a callback, pipeline tasks fail and say why") {
    WorkflowRunner runner(scheduler, workflow({task("orphan")}));
    auto result = runner.run();
    CHECK(state_of(result, "orphan") == WorkflowTaskState::failed);
    CHECK(result.find("orphan")->error == "no pipeline runner was given (WorkflowOptions::run_pipeline)");
  }
}

TEST_CASE("tasks ready together beyond the queue's capacity wait for room instead of failing",
          "[workflow][capacity]") {
  // One worker, one queue slot, six independent tasks and a task after them: most are refused for want of
  // room at first, and used to fail with "the scheduler refused it: queue full".
  Scheduler scheduler({.workers = 1, .queue_capacity = 1});
  std::atomic<int> ran{0};
  WorkflowOptions options;
  options.run_pipeline = [&](const WorkflowTask&, TaskContext&) {
    ++ran;
    return PipelineOutcome::success();
  };
  WorkflowRunner runner(scheduler,
                        workflow({task("a"), task("b"), task("c"), task("d"), task("e"), task("f"),
                                  task("last", {"a", "b", "c", "d", "e", "f"})}),
                        std::move(options));
  runner.start();
  auto result = runner.wait();
  CHECK(result.success);
  CHECK(result.count(WorkflowTaskState::succeeded) == 7);
  CHECK(ran == 7);
  CHECK(scheduler.metrics().rejected > 0);  // the refusals happened, and were waited out
}

TEST_CASE("stop() ends the tasks waiting for queue room as cancelled", "[workflow][capacity][cancel]") {
  Scheduler scheduler({.workers = 1, .queue_capacity = 1});
  Signal started;
  WorkflowOptions options;
  options.run_pipeline = [&](const WorkflowTask& t, TaskContext& ctx) {
    if (*t.name != "long") return PipelineOutcome::success();
    started.notify();
    while (!ctx.cancellation_requested()) std::this_thread::yield();
    return PipelineOutcome::stopped();
  };
  auto long_task = task("long");
  long_task.priority.value = 10;  // first on the single worker
  WorkflowRunner runner(scheduler,
                        workflow({long_task, task("b"), task("c"), task("d"), task("after", {"b"})}),
                        std::move(options));
  runner.start();  // at most one of b, c, d has the queue slot; the others are refused and wait
  REQUIRE(started.wait_for_count(1));
  runner.stop();
  auto result = runner.wait();
  CHECK_FALSE(result.success);
  CHECK(result.count(WorkflowTaskState::cancelled) == 5);
  for (const char* name : {"b", "c", "d", "after"}) {
    INFO(name);
    CHECK(result.find(name)->error.starts_with("cancelled before it started"));
  }
}

TEST_CASE("a pipeline stopped early by the workflow's stop() ends its task cancelled, not succeeded",
          "[workflow][cancel]") {
  Scheduler scheduler({.workers = 1});
  Signal started;
  WorkflowOptions options;
  options.run_pipeline = [&](const WorkflowTask&, TaskContext& ctx) {
    started.notify();
    while (!ctx.cancellation_requested()) std::this_thread::yield();
    return PipelineOutcome::stopped();  // as the CLI's runner says when its source stopped early
  };
  WorkflowRunner runner(scheduler, workflow({task("hash")}), std::move(options));
  runner.start();
  REQUIRE(started.wait_for_count(1));
  runner.stop();
  auto result = runner.wait();
  CHECK_FALSE(result.success);
  CHECK(state_of(result, "hash") == WorkflowTaskState::cancelled);
  CHECK(result.find("hash")->error == "stopped before its pipeline was done");
}

TEST_CASE("stop() cancels running tasks and everything not started", "[workflow][cancel]") {
  Scheduler scheduler({.workers = 1});
  Signal started;
  std::atomic<int> others{0};
  WorkflowOptions options;
  options.run_pipeline = [&](const WorkflowTask& t, TaskContext& ctx) {
    if (*t.name != "long") {
      ++others;
      return PipelineOutcome::success();
    }
    started.notify();
    while (!ctx.cancellation_requested()) std::this_thread::yield();
    ctx.throw_if_cancelled();
    return PipelineOutcome::success();
  };
  auto long_task = task("long");
  long_task.priority.value = 10;  // starts first on the single worker; the other root waits in the queue
  WorkflowRunner runner(scheduler,
                        workflow({long_task, task("queued"), task("after", {"long"}, RunIf::always),
                                  task("later", {"after"}, RunIf::always)}),
                        std::move(options));
  runner.start();
  REQUIRE(started.wait_for_count(1));
  runner.stop();
  runner.stop();  // idempotent
  auto result = runner.wait();
  CHECK_FALSE(result.success);
  CHECK(state_of(result, "long") == WorkflowTaskState::cancelled);
  CHECK(state_of(result, "queued") == WorkflowTaskState::cancelled);
  CHECK(result.find("queued")->error == "cancelled before it started");
  CHECK(state_of(result, "after") == WorkflowTaskState::cancelled);
  CHECK(result.find("after")->error == "cancelled before it started: the workflow was stopped");
  CHECK(state_of(result, "later") == WorkflowTaskState::cancelled);
  CHECK(others == 0);
  CHECK(result.count(WorkflowTaskState::cancelled) == 4);
}

TEST_CASE("a diamond on one worker runs higher-priority branches first", "[workflow][priority]") {
  Scheduler scheduler({.workers = 1, .order = taskhive::QueueOrder::strict});
  Recorder recorder;
  WorkflowOptions options;
  options.run_pipeline = recorder.runner();
  auto low = task("low", {"root"});
  low.priority.value = 1;
  auto high = task("high", {"root"});
  high.priority.value = 10;
  auto mid = task("mid", {"root"});
  mid.priority.value = 5;
  WorkflowRunner runner(scheduler,
                        workflow({task("root"), low, mid, high, task("join", {"low", "mid", "high"})}),
                        std::move(options));
  auto result = runner.run();
  CHECK(result.success);
  // The root's end submits all three from the worker before it takes the next task, so the queue orders them.
  CHECK(recorder.order == std::vector<std::string>{"root", "high", "mid", "low", "join"});
}

TEST_CASE("long chains and wide fans finish on a one-worker scheduler", "[workflow]") {
  Scheduler scheduler({.workers = 1, .queue_capacity = 16});
  std::atomic<int> ran{0};
  WorkflowOptions options;
  options.run_pipeline = [&](const WorkflowTask&, TaskContext&) {
    ++ran;
    return PipelineOutcome::success();
  };
  std::vector<WorkflowTask> tasks{task("t0")};
  for (int i = 1; i < 200; ++i) tasks.push_back(task("t" + std::to_string(i), {"t" + std::to_string(i - 1)}));
  for (int i = 0; i < 10; ++i) tasks.push_back(task("fan" + std::to_string(i), {"t199"}));
  WorkflowRunner runner(scheduler, workflow(std::move(tasks)), std::move(options));
  auto result = runner.run();
  CHECK(result.success);
  CHECK(ran == 210);
}

TEST_CASE("a workflow that is not valid is refused", "[workflow]") {
  Scheduler scheduler({.workers = 1});
  CHECK_THROWS_WITH(WorkflowRunner(scheduler, workflow({task("a", {"b"}), task("b", {"a"}), task("c")})),
                    Catch::Contains("dependency cycle"));
  CHECK_THROWS_WITH(WorkflowRunner(scheduler, workflow({task("a", {"ghost"})})),
                    "workflow task 'a' depends on an unknown task 'ghost'");
  CHECK_THROWS_WITH(WorkflowRunner(scheduler, workflow({task("a"), task("a")})),
                    "two workflow tasks are named 'a'");
  WorkflowRunner empty(scheduler, Workflow{});
  auto result = empty.run();
  CHECK(result.success);
  CHECK(result.tasks.empty());
}

TEST_CASE("the summary prints one aligned line per task and the totals", "[workflow][summary]") {
  taskhive::WorkflowResult result;
  const auto t0 = taskhive::Clock::time_point(100s);
  auto ran = [&](std::string name, WorkflowTaskState state, int attempts, std::chrono::milliseconds d,
                 std::string error = {}) {
    taskhive::WorkflowTaskResult r{std::move(name), state, std::move(error), attempts, t0, t0 + d, d};
    result.tasks.push_back(r);
  };
  ran("build", WorkflowTaskState::succeeded, 1, 1200ms);
  ran("integration-tests", WorkflowTaskState::failed, 3, 4020ms, "exit status 1\nsee the log");
  ran("deploy", WorkflowTaskState::skipped, 0, 0ms);
  result.tasks.back().started_at.reset();
  result.tasks.back().finished_at.reset();
  result.tasks.back().error = "not run: a dependency did not succeed (integration-tests failed)";
  ran("notify", WorkflowTaskState::succeeded, 1, 35ms);
  result.success = false;
  result.elapsed = 5300ms;
  std::ostringstream out;
  taskhive::print_summary(out, result);
  CHECK(out.str() ==
        "build              succeeded  1 attempt   1.20s\n"
        "integration-tests  failed     3 attempts  4.02s  exit status 1 see the log\n"
        "deploy             skipped                       not run: a dependency did not succeed "
        "(integration-tests failed)\n"
        "notify             succeeded  1 attempt    35ms\n"
        "workflow failed: 2 succeeded, 1 failed, 1 skipped in 5.30s\n");
}

TEST_CASE("a workflow loaded from YAML runs", "[workflow][config]") {
  auto loaded = taskhive::load_config_string(R"(workflow:
  tasks:
    - name: first
      uses: wftest.fail
    - name: second
      uses: wftest.fail
      depends_on: [first]
      if: always
)",
                                             "inline.yaml");
  INFO(taskhive::format_diagnostics(loaded.diagnostics));
  REQUIRE(loaded.ok());
  REQUIRE(loaded.config.workflow);
  Scheduler scheduler({.workers = 1});
  WorkflowRunner runner(scheduler, *loaded.config.workflow);  // no catalog: both fail, and say so
  auto result = runner.run();
  CHECK(state_of(result, "first") == WorkflowTaskState::failed);
  CHECK(state_of(result, "second") == WorkflowTaskState::failed);
  CHECK(result.find("second")->error ==
        "no plugin catalog was given to run 'wftest.fail' (WorkflowOptions::catalog)");
}
