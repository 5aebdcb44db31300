// Pipelines run as flow graphs: items reach the sinks, ordered when asked, failures follow on_error, retries
// wait in a timer, stop drains and cancel drops, and a plugin that is missing fails before anything runs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <taskhive/config.hpp>
#include <taskhive/pipeline.hpp>
#include <taskhive/plugin_catalog.hpp>
#include <taskhive/scheduler.hpp>

namespace fs = std::filesystem;

namespace {

// A private copy of the test plugin directory (the loader refuses group-writable files, and the build's
// umask is not ours to rely on) and an output directory.
class Fixture {
 public:
  Fixture() {
    std::string pattern = (fs::temp_directory_path() / "taskhive-pipeline-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    root_ = fs::canonical(pattern);
    fs::create_directory(root_ / "plugins");
    fs::permissions(root_ / "plugins", fs::perms(0755));
    fs::copy_file(fs::path(TASKHIVE_PIPETEST_PLUGIN_DIR) / "pipetest.so", root_ / "plugins" / "pipetest.so");
    fs::permissions(root_ / "plugins" / "pipetest.so", fs::perms(0755));
    auto catalog = taskhive::PluginCatalog::open({.loader = {.dirs = {root_ / "plugins"}}});
    INFO(catalog.error());
    REQUIRE(catalog);
    catalog_ = std::move(catalog).value();
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  fs::path out(const std::string& name) const { return root_ / name; }

  // Loads a pipeline config (YAML text), checked against the plugin's kinds.
  taskhive::Config config(const std::string& yaml) {
    const auto records = catalog_->records();
    taskhive::ConfigOptions options;
    options.variables = {{"out", root_.string()}};
    options.plugins = std::span<const taskhive::PluginRecord>(records);
    auto result = taskhive::load_config_string(yaml, "test.yaml", options, root_);
    INFO(taskhive::format_diagnostics(result.diagnostics));
    REQUIRE(result.ok());
    REQUIRE(result.config.pipeline);
    return std::move(result.config);
  }

  taskhive::PluginCatalog& catalog() { return *catalog_; }

 private:
  fs::path root_;
  std::unique_ptr<taskhive::PluginCatalog> catalog_;
};

std::vector<std::string> lines(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> numbers(int n, const std::string& prefix = "") {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

const taskhive::StageStats& stats(const taskhive::PipelineSummary& summary, const std::string& name) {
  for (const auto& stage : summary.stages)
    if (stage.name == name) return stage;
  FAIL("no stage " << name);
  std::abort();
}

taskhive::PipelineSummary run(Fixture& fixture, const taskhive::Config& config,
                              taskhive::Scheduler& scheduler) {
  auto pipeline = taskhive::PipelineRun::create(*config.pipeline, fixture.catalog(), scheduler);
  INFO(pipeline.error());
  REQUIRE(pipeline);
  return (*pipeline)->run();
}

}  // namespace

TEST_CASE("every source item goes through the stages to the sink; ordered keeps source order", "[pipeline]") {
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  const auto config = fixture.config(R"(
pipeline:
  ordered: true
  source: {name: numbers, uses: pipetest.count, params: {n: 500}}
  stages:
    - {name: a, uses: pipetest.tag, params: {prefix: "a", slow_below: 20}, concurrency: 4, max_in_flight: 8}
    - {name: b, uses: pipetest.tag, params: {prefix: "b"}, concurrency: unlimited}
  sink: {name: out, uses: pipetest.collect, params: {path: "${out}/ordered.txt"}}
)");
  const auto summary = run(fixture, config, scheduler);
  INFO(taskhive::format_summary(summary));
  CHECK(summary.ok());
  CHECK(summary.source_items == 500);
  CHECK(stats(summary, "a").in == 500);
  CHECK(stats(summary, "b").out == 500);
  CHECK(stats(summary, "out").out == 500);
  CHECK(lines(fixture.out("ordered.txt")) == numbers(500, "ba"));
}

TEST_CASE("unordered, every item still arrives exactly once; a transform may emit several", "[pipeline]") {
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  const auto config = fixture.config(R"(
pipeline:
  source: {name: numbers, uses: pipetest.count, params: {n: 300}}
  stages:
    - {name: twice, uses: pipetest.tag, params: {split: 2, slow_below: 10}, concurrency: 3}
  sink: [{name: out, uses: pipetest.collect, params: {path: "${out}/a.txt"}},
         {name: copy, uses: pipetest.collect, params: {path: "${out}/b.txt"}}]
)");
  const auto summary = run(fixture, config, scheduler);
  CHECK(summary.ok());
  CHECK(stats(summary, "twice").out == 600);
  auto got = lines(fixture.out("a.txt"));
  std::sort(got.begin(), got.end());
  std::vector<std::string> expected;
  for (const auto& n : numbers(300)) expected.insert(expected.end(), {n, n});
  std::sort(expected.begin(), expected.end());
  CHECK(got == expected);
  CHECK(lines(fixture.out("b.txt")).size() == 600);  // every sink gets every item
}

TEST_CASE("on_error: skip drops the item, dead_letter sends it with its error, fail ends the run",
          "[pipeline]") {
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  SECTION("skip") {
    const auto summary = run(fixture, fixture.config(R"(
pipeline:
  source: {name: numbers, uses: pipetest.count, params: {n: 20}}
  stages: [{name: picky, uses: pipetest.tag, params: {fail_on: "7"}, on_error: skip}]
  sink: {name: out, uses: pipetest.collect, params: {path: "${out}/skip.txt"}}
)"),
                             scheduler);
    CHECK_FALSE(summary.ok());  // a failed item is a failure of the run (exit 1), even when skipped
    CHECK(stats(summary, "picky").failed == 1);
    CHECK(summary.fatal_error.empty());
    CHECK(lines(fixture.out("skip.txt")).size() == 19);
    REQUIRE(summary.first_errors.size() == 1);
    CHECK(summary.first_errors[0] == "picky: told to fail on 7");
  }
  SECTION("dead_letter") {
    const auto summary = run(fixture, fixture.config(R"(
pipeline:
  source: {name: numbers, uses: pipetest.count, params: {n: 20}}
  stages: [{name: picky, uses: pipetest.tag, params: {fail_on: "7"}, on_error: dead_letter, dead_letter: rejects}]
  sink:
    - {name: out, uses: pipetest.collect, params: {path: "${out}/good.txt"}}
    - {name: rejects, uses: pipetest.collect, params: {path: "${out}/rejects.txt", metadata: true}}
)"),
                             scheduler);
    CHECK(stats(summary, "picky").dead_lettered == 1);
    CHECK(lines(fixture.out("good.txt")).size() == 19);
    CHECK(lines(fixture.out("rejects.txt")) ==
          std::vector<std::string>{"7|number=7|error=told to fail on 7|stage=picky"});
  }
  SECTION("fail") {
    const auto summary = run(fixture, fixture.config(R"(
pipeline:
  source: {name: numbers, uses: pipetest.count, params: {n: 100000}}
  stages: [{name: picky, uses: pipetest.tag, params: {fail_on: "7"}}]
  sink: {name: out, uses: pipetest.collect, params: {path: "${out}/fail.txt"}}
)"),
                             scheduler);
    CHECK_FALSE(summary.ok());
    CHECK(summary.fatal_error ==
          "stage \"picky\" failed an item and its on_error is fail: told to fail on 7");
    CHECK(summary.source_items < 100000);  // the source stopped early
    // Items in flight drained to the sink, which was finished: nothing accepted was lost.
    CHECK(lines(fixture.out("fail.txt")).size() == stats(summary, "out").out);
  }
}

TEST_CASE("an item dead-lettered twice carries one error and one stage, the latest", "[pipeline]") {
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  const auto summary = run(fixture, fixture.config(R"(
pipeline:
  source: {name: numbers, uses: pipetest.count, params: {n: 5}}
  stages: [{name: picky, uses: pipetest.tag, params: {fail_on: "3"}, on_error: dead_letter, dead_letter: first}]
  sink:
    - {name: out, uses: pipetest.collect, params: {path: "${out}/good.txt"}}
    - name: first
      uses: pipetest.collect
      params: {path: "${out}/first.txt", fail_on: "3"}
      on_error: dead_letter
      dead_letter: second
    - {name: second, uses: pipetest.collect, params: {path: "${out}/second.txt", metadata: true}}
)"),
                           scheduler);
  CHECK(lines(fixture.out("second.txt")) ==
        std::vector<std::string>{"3|number=3|error=sink told to fail on 3|stage=first"});
}

TEST_CASE("a plugin that emits a malformed item fails that item with the host's reason", "[pipeline]") {
  // The emit callback runs inside plugin code: it must refuse a NULL metadata value with an error code, not
  // throw through the C ABI.
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  const auto summary = run(fixture, fixture.config(R"(
pipeline:
  source: {name: numbers, uses: pipetest.count, params: {n: 3}}
  stages: [{name: broken, uses: pipetest.tag, params: {null_value: true}, on_error: skip}]
  sink: {name: out, uses: pipetest.collect, params: {path: "${out}/out.txt"}}
)"),
                           scheduler);
  CHECK(summary.fatal_error.empty());  // the host carried on: each item failed, and was skipped
  CHECK(stats(summary, "broken").failed == 3);
  CHECK(lines(fixture.out("out.txt")).empty());
  REQUIRE_FALSE(summary.first_errors.empty());
  CHECK(summary.first_errors.front() ==
        "broken: the plugin emitted an item with a NULL metadata key or value");
}

TEST_CASE("a sink call that overruns its timeout writes its item once and counts it written", "[pipeline]") {
  // The call cannot be interrupted and its write has happened: failing it would retry the write.
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  const auto summary = run(fixture, fixture.config(R"(
pipeline:
  source: {name: numbers, uses: pipetest.count, params: {n: 3}}
  sink:
    name: out
    uses: pipetest.collect
    params: {path: "${out}/out.txt", slow_ms: 20}
    timeout: 1ms
    retry: {limit: 2}
)"),
                           scheduler);
  CHECK(summary.ok());
  CHECK(lines(fixture.out("out.txt")) == numbers(3));
  CHECK(stats(summary, "out").out == 3);
  CHECK(stats(summary, "out").failed == 0);
  CHECK(stats(summary, "out").retries == 0);
  REQUIRE_FALSE(summary.first_errors.empty());
  CHECK(summary.first_errors.front().find("over its timeout of 1ms (the item was written)") !=
        std::string::npos);
}

TEST_CASE("a failing call is retried after its backoff and then succeeds", "[pipeline]") {
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  const auto summary = run(fixture, fixture.config(R"(
pipeline:
  ordered: true
  source: {name: numbers, uses: pipetest.count, params: {n: 30}}
  stages:
    - name: flaky
      uses: pipetest.tag
      params: {prefix: "retry-test-", fail_times: 2}
      concurrency: 2
      retry: {limit: 2, backoff: {initial: 1ms, factor: 2, max: 4ms}}
  sink: {name: out, uses: pipetest.collect, params: {path: "${out}/retried.txt"}}
)"),
                           scheduler);
  INFO(taskhive::format_summary(summary));
  CHECK(summary.ok());
  CHECK(stats(summary, "flaky").retries == 60);
  CHECK(lines(fixture.out("retried.txt")) == numbers(30, "retry-test-"));
}

TEST_CASE("a source error follows the source's on_error and the source goes on", "[pipeline]") {
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  const auto summary = run(fixture, fixture.config(R"(
pipeline:
  source: {name: numbers, uses: pipetest.count, params: {n: 10, error_at: 3}, on_error: skip}
  sink: {name: out, uses: pipetest.collect, params: {path: "${out}/source.txt"}}
)"),
                           scheduler);
  CHECK(stats(summary, "numbers").failed == 1);
  CHECK(summary.first_errors.at(0) == "numbers: cannot read item 3");
  CHECK(lines(fixture.out("source.txt")).size() == 9);
}

TEST_CASE("stop() ends the source and drains; cancel() drops what is in flight", "[pipeline]") {
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  const auto config = fixture.config(R"(
pipeline:
  source: {name: numbers, uses: pipetest.count, params: {n: 1000000000}}
  stages: [{name: a, uses: pipetest.tag, params: {}}]
  sink: {name: out, uses: pipetest.collect, params: {path: "${out}/stopped.txt"}}
)");
  auto pipeline = taskhive::PipelineRun::create(*config.pipeline, fixture.catalog(), scheduler);
  REQUIRE(pipeline);
  SECTION("stop") {
    (*pipeline)->stop();  // before it runs: the source is asked for nothing
    const auto summary = (*pipeline)->run();
    CHECK(summary.stopped);
    CHECK(summary.ok());
    CHECK(summary.source_items == 0);
    CHECK(lines(fixture.out("stopped.txt")).empty());
  }
  SECTION("cancel") {
    (*pipeline)->cancel();
    const auto summary = (*pipeline)->run();
    CHECK(summary.cancelled);
    CHECK_FALSE(summary.ok());
    CHECK_FALSE(fs::exists(fixture.out("stopped.txt")));  // a cancelled sink is not finished
  }
}

TEST_CASE("a source stopped early counts out only the items it passed on", "[pipeline]") {
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  // The first call emits ten items; the run is stopped after two have gone on, eight still buffered.
  const auto config = fixture.config(R"(
pipeline:
  source: {name: numbers, uses: pipetest.count, params: {n: 100, per_call: 10}}
  sink: {name: out, uses: pipetest.collect, params: {path: "${out}/early.txt"}}
)");
  auto pipeline = taskhive::PipelineRun::create(*config.pipeline, fixture.catalog(), scheduler);
  REQUIRE(pipeline);
  int polls = 0;
  // Polled before each step of the source node: the call that buffers ten items, item 0, item 1, stop.
  (*pipeline)->stop_when([&] { return ++polls > 3; });
  const auto summary = (*pipeline)->run();
  CHECK(summary.stopped);
  CHECK(stats(summary, "numbers").in == 1);
  CHECK(stats(summary, "numbers").out == 2);
  CHECK(summary.source_items == 2);
  CHECK(stats(summary, "out").in == 2);
  CHECK(lines(fixture.out("early.txt")) == std::vector<std::string>{"0", "1"});
}

TEST_CASE("cancel() drops what is in flight but what a sink took in is flushed out", "[pipeline]") {
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 2});
  std::atomic<int> consumed{0};
  const auto config = fixture.config(fmt::format(R"(
pipeline:
  source: {{name: numbers, uses: pipetest.count, params: {{n: 1000000000}}}}
  sink: {{name: out, uses: pipetest.collect, params: {{path: "${{out}}/cancelled.txt", consumed_counter: "{}"}}}}
)",
                                                 static_cast<void*>(&consumed)));
  auto pipeline = taskhive::PipelineRun::create(*config.pipeline, fixture.catalog(), scheduler);
  REQUIRE(pipeline);
  // Polled by the source before each item: after ten items, wait until the sink (on the other worker) has
  // taken five in, and cancel the run from there.
  int polls = 0;
  (*pipeline)->stop_when([&] {
    if (++polls <= 10) return false;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (consumed.load() < 5 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    (*pipeline)->cancel();
    return true;
  });
  const auto summary = (*pipeline)->run();
  CHECK(summary.cancelled);
  REQUIRE(stats(summary, "out").in >= 5);
  // Every item the sink counted is in the file: flushed, since a cancelled stream is not finished.
  CHECK(lines(fixture.out("cancelled.txt")).size() == stats(summary, "out").in);
}

TEST_CASE("a pipeline whose plugin or kind is missing fails before anything runs", "[pipeline]") {
  Fixture fixture;
  taskhive::Scheduler scheduler({.workers = 1});
  taskhive::Pipeline pipeline;
  pipeline.source.name.value = "numbers";
  pipeline.source.uses = {"nosuch", "count", {}};
  auto missing = taskhive::PipelineRun::create(pipeline, fixture.catalog(), scheduler);
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == "stage \"numbers\": no plugin named \"nosuch\" is available");
  pipeline.source.uses = {"pipetest", "tag", {}};
  auto wrong = taskhive::PipelineRun::create(pipeline, fixture.catalog(), scheduler);
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error() == "stage \"numbers\": pipetest.tag is a transform, not a source");
}
