// The config model, variables, suggestions, workflow checks, plugin params and the printer, one behaviour at
// a time. The corpus in golden_test.cpp covers the messages of every kind of mistake at once.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <taskhive/config.hpp>

#include "config/fake_plugins.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using taskhive::ConfigOptions;
using taskhive::load_config_string;

namespace {

ConfigOptions no_environment() {
  ConfigOptions options;
  options.environment = nullptr;
  return options;
}

std::string diagnostics(const taskhive::ConfigResult& result) {
  return taskhive::format_diagnostics(result.diagnostics);
}

const char* const minimal = R"(pipeline:
  source: {name: files, uses: fs.walk, params: {root: /srv}}
  sink: {name: print, uses: out.stdout}
)";

// A pipeline whose source has `extra` added to its mapping (flow style).
std::string with_source(const std::string& extra) {
  return "pipeline:\n  source: {name: files, uses: fs.walk, params: {root: /srv}, " + extra +
         "}\n  sink: {name: print, uses: out.stdout}\n";
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "taskhive-config-XXXXXX").string();
    path = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    fs::create_directories((path / name).parent_path());
    std::ofstream(path / name, std::ios::binary) << text;
  }
};

}  // namespace

TEST_CASE("a minimal pipeline gets every default") {
  const auto result = load_config_string(minimal, "m.yaml", no_environment());
  INFO(diagnostics(result));
  REQUIRE(result.ok());
  REQUIRE(result.diagnostics.empty());
  const auto& c = result.config;
  CHECK(*c.scheduler.workers == 0);
  CHECK(*c.scheduler.queue_capacity == 100'000);
  CHECK(*c.scheduler.order == taskhive::ConfigOrder::aging);
  CHECK_FALSE(c.backpressure.enabled);
  CHECK(*c.plugins.probe);
  REQUIRE(c.pipeline);
  REQUIRE_FALSE(c.workflow);
  const auto& source = c.pipeline->source;
  CHECK(*source.name == "files");
  CHECK(source.uses.plugin == "fs");
  CHECK(source.uses.kind == "walk");
  CHECK(source.uses.pos == taskhive::SourcePos{"m.yaml", 2, 31});
  CHECK(source.params.at("root").value == "/srv");
  CHECK(*source.concurrency == taskhive::serial_concurrency);
  CHECK(*source.max_in_flight == 64);
  CHECK_FALSE(source.max_in_flight.pos.known());
  CHECK(*source.retry.limit == 0);
  CHECK(*source.retry.backoff.initial == 100ms);
  CHECK(*source.retry.backoff.factor == 2.0);
  CHECK(*source.retry.backoff.max == 30s);
  CHECK(*source.retry.backoff.jitter);
  CHECK(source.timeout->count() == 0);
  CHECK(*source.on_error == taskhive::OnError::fail);
  REQUIRE(c.pipeline->sinks.size() == 1);
  CHECK_FALSE(*c.pipeline->ordered);
  CHECK(c.directory == fs::current_path());
}

TEST_CASE("values carry the line and column they were written at") {
  const auto result = load_config_string("scheduler:\n  workers: 8\n  order: strict\n" + std::string(minimal),
                                         "p.yaml", no_environment());
  REQUIRE(result.ok());
  CHECK(*result.config.scheduler.workers == 8);
  CHECK(result.config.scheduler.workers.pos == taskhive::SourcePos{"p.yaml", 2, 12});
  CHECK(result.config.scheduler.order.pos == taskhive::SourcePos{"p.yaml", 3, 10});
  CHECK(result.config.pipeline->sinks[0].pos.line == 6);
}

TEST_CASE("durations") {
  using taskhive::parse_duration;
  CHECK(parse_duration("100ms") == 100ms);
  CHECK(parse_duration("5s") == 5s);
  CHECK(parse_duration("2m") == 2min);
  CHECK(parse_duration("1h") == 1h);
  CHECK(parse_duration("1m30s") == 90s);
  CHECK(parse_duration("1h2m3s4ms") == 1h + 2min + 3s + 4ms);
  CHECK(parse_duration("0") == 0ms);
  CHECK(parse_duration("0s") == 0ms);
  CHECK(parse_duration("8760h") == 8760h);
  for (const char* bad : {"", "5", "1.5s", "s", "5 s", "30s1m", "1s1s", "5x", "-5s", "8761h",
                          "99999999999999h", "1m 30s", "ms"}) {
    INFO(bad);
    CHECK_FALSE(parse_duration(bad));
  }
  using taskhive::format_duration;
  CHECK(format_duration(90s) == "1m30s");
  CHECK(format_duration(100ms) == "100ms");
  CHECK(format_duration(1500ms) == "1s500ms");
  CHECK(format_duration(0ms) == "0s");
  CHECK(format_duration(2h) == "2h");
  for (taskhive::ConfigDuration d : {1ms, 999ms, 1000ms, 61'000ms, 3'601'000ms, 86'400'000ms})
    CHECK(parse_duration(format_duration(d)) == d);

  const auto result = load_config_string(with_source("timeout: none, retry: {backoff: {initial: 1s500ms}}"),
                                         "d.yaml", no_environment());
  REQUIRE(result.ok());
  CHECK(result.config.pipeline->source.timeout->count() == 0);
  CHECK(*result.config.pipeline->source.retry.backoff.initial == 1500ms);

  const auto bare = load_config_string(with_source("timeout: 30"), "d.yaml", no_environment());
  CHECK(diagnostics(bare) ==
        "d.yaml:2:71: error: expected a duration such as 100ms, 5s, 2m or 1m30s (or none), got '30': a "
        "duration "
        "needs a unit\n");
}

TEST_CASE("variables come from the map, then the environment, then the default") {
  taskhive::test::FakeOptions fake;
  fake.options.variables["HOME"] = "/from/var";  // the map wins over the environment
  const auto result = load_config_string(
      "scheduler: {workers: '${workers}'}\n"
      "pipeline:\n"
      "  source: {name: files, uses: fs.walk, params: {root: '${input}/x', pattern: '${pat:-*.txt}'}}\n"
      "  sink:\n"
      "    - {name: a, uses: out.file, params: {path: '${HOME}', append: '${append:-}x'}}\n"
      "    - {name: b, uses: out.stdout, params: {prefix: 'cost: $$5 ${missing:-none} $ {x} $x'}}\n",
      "v.yaml", fake.options);
  INFO(diagnostics(result));
  const auto& p = *result.config.pipeline;
  CHECK(*result.config.scheduler.workers == 3);
  CHECK(p.source.params.at("root").value == "/data/in/x");
  CHECK(p.source.params.at("pattern").value == "*.txt");
  CHECK(p.sinks[0].params.at("path").value == "/from/var");
  CHECK(p.sinks[1].params.at("prefix").value == "cost: $5 none $ {x} $x");
  // `append` became "x", which is not a bool: the substituted text is what gets checked.
  CHECK(diagnostics(result) ==
        "v.yaml:5:67: error: param 'append' of out.file expects true or false, got 'x'\n");

  auto env_only = no_environment();
  env_only.environment = [](const std::string& name) -> std::optional<std::string> {
    if (name == "WORKERS") return "7";
    return std::nullopt;
  };
  const auto from_env =
      load_config_string("scheduler: {workers: '${WORKERS}'}\n" + std::string(minimal), "e.yaml", env_only);
  REQUIRE(from_env.ok());
  CHECK(*from_env.config.scheduler.workers == 7);
}

TEST_CASE("an unset variable without a default is an error at its own column") {
  // In a flow mapping ({...}) a value holding braces must be quoted, or YAML reads them as the mapping's.
  const auto result = load_config_string(with_source("timeout: '${limit}'"), "u.yaml", no_environment());
  CHECK(diagnostics(result) ==
        "u.yaml:2:72: error: variable 'limit' is not set: pass --var limit=VALUE, set it in the environment, "
        "or give "
        "a default as ${limit:-VALUE}\n");
  const auto two = load_config_string(
      "pipeline:\n  source: {name: f, uses: fs.walk, params: {root: 'a/${x}/${y:-1}/${z}'}}\n"
      "  sink: {name: p, uses: out.stdout}\n",
      "u.yaml", no_environment());
  const auto text = diagnostics(two);
  CHECK(text.find("u.yaml:2:54: error: variable 'x' is not set") != std::string::npos);
  CHECK(text.find("u.yaml:2:67: error: variable 'z' is not set") != std::string::npos);
}

TEST_CASE("keys are never substituted") {
  const auto result = load_config_string(
      "pipeline:\n  source: {name: f, uses: fs.walk, params: {'${k}': v}}\n  sink: {name: p, uses: "
      "out.stdout}\n",
      "k.yaml", no_environment());
  REQUIRE(result.ok());
  CHECK(result.config.pipeline->source.params.contains("${k}"));
}

TEST_CASE("unknown keys suggest the closest known one") {
  auto check = [](const std::string& text, const std::string& expected) {
    const auto result = load_config_string(text, "s.yaml", no_environment());
    INFO(text);
    CHECK(diagnostics(result) == expected);
  };
  check("scheduler: {workrs: 2}\n" + std::string(minimal),
        "s.yaml:1:13: error: unknown key 'workrs' in scheduler (did you mean 'workers'?)\n");
  check("scheduler: {oredr: strict}\n" + std::string(minimal),
        "s.yaml:1:13: error: unknown key 'oredr' in scheduler (did you mean 'order'?)\n");
  check("scheduler: {zzz: 1}\n" + std::string(minimal),
        "s.yaml:1:13: error: unknown key 'zzz' in scheduler; expected one of: workers, queue_capacity, "
        "order\n");
  check(
      "pipline:\n  x: 1\n",
      "s.yaml:1:1: error: unknown key 'pipline' in the config (did you mean 'pipeline'?)\n"
      "s.yaml:1:1: error: neither 'pipeline' nor 'workflow' is given; a config needs exactly one of them\n");
  check(with_source("max_inflight: 3"),
        "s.yaml:2:62: error: unknown key 'max_inflight' in source 'files' (did you mean 'max_in_flight'?)\n");
  check(with_source("on_error: skp"),
        "s.yaml:2:72: error: expected fail, skip or dead_letter, got 'skp' (did you mean 'skip'?)\n");
}

TEST_CASE("wrong types say what was expected and what was found") {
  auto first_error = [](const std::string& text) {
    const auto result = load_config_string(text, "t.yaml", no_environment());
    return result.diagnostics.empty() ? std::string() : result.diagnostics.front().message;
  };
  CHECK(first_error("scheduler: {workers: many}\n" + std::string(minimal)) ==
        "expected a positive integer or auto, got 'many'");
  CHECK(first_error("scheduler: {queue_capacity: many}\n" + std::string(minimal)) ==
        "expected an integer, got 'many'");
  CHECK(first_error("scheduler: {queue_capacity: 0}\n" + std::string(minimal)) ==
        "queue_capacity must be from 1 to 1000000000, got 0");
  CHECK(first_error("scheduler: {queue_capacity: [1]}\n" + std::string(minimal)) ==
        "expected an integer, got a list");
  CHECK(first_error("scheduler: {queue_capacity: }\n" + std::string(minimal)) ==
        "expected an integer, got nothing");
  CHECK(first_error("scheduler: [1, 2]\n" + std::string(minimal)) ==
        "expected a mapping for scheduler, got a list");
  CHECK(first_error("plugins: {probe: yes}\n" + std::string(minimal)) == "expected true or false, got 'yes'");
  CHECK(first_error(with_source("retry: {backoff: {factor: fast}}")) == "expected a number, got 'fast'");
  CHECK(first_error(with_source("retry: {backoff: {factor: 0.5}}")) ==
        "factor must be from 1 to 100, got 0.5");
  CHECK(first_error("- a\n- b\n") == "expected a mapping for the config, got a list");
  CHECK(first_error("just text\n") == "expected a mapping for the config, got 'just text'");
}

TEST_CASE("concurrency is serial, unlimited or N") {
  const auto result = load_config_string(
      "pipeline:\n  source: {name: f, uses: fs.walk}\n  stages:\n"
      "    - {name: a, uses: t.a, concurrency: unlimited}\n"
      "    - {name: b, uses: t.b, concurrency: 8, max_in_flight: 4}\n"
      "    - {name: c, uses: t.c, concurrency: serial}\n"
      "  sink: {name: p, uses: o.p}\n",
      "c.yaml", no_environment());
  CHECK(diagnostics(result) ==
        "c.yaml:5:41: warning: concurrency 8 is above max_in_flight 4: at most 4 items run at once in stage "
        "'b'\n");
  REQUIRE(result.ok());  // a warning only
  const auto& stages = result.config.pipeline->stages;
  CHECK(*stages[0].concurrency == taskhive::unlimited_concurrency);
  CHECK(*stages[1].concurrency == 8);
  CHECK(*stages[2].concurrency == taskhive::serial_concurrency);
}

TEST_CASE("workflow dependencies: cycles are printed as paths") {
  const auto result = load_config_string(R"(workflow:
  tasks:
    - {name: start, uses: s.run}
    - {name: alpha, uses: s.run, depends_on: [start, gamma]}
    - {name: beta, uses: s.run, depends_on: alpha}
    - {name: gamma, uses: s.run, depends_on: beta}
    - {name: self, uses: s.run, depends_on: [self]}
)",
                                         "w.yaml", no_environment());
  CHECK(diagnostics(result) ==
        "w.yaml:5:45: error: dependency cycle: alpha -> beta -> gamma -> alpha\n"
        "w.yaml:7:46: error: dependency cycle: self -> self\n");
}

TEST_CASE("a workflow without a root task, and unknown dependencies") {
  const auto result = load_config_string(R"(workflow:
  tasks:
    - {name: build, uses: s.run, depends_on: tset}
    - {name: test, uses: s.run, depends_on: [biuld]}
)",
                                         "r.yaml", no_environment());
  CHECK(diagnostics(result) ==
        "r.yaml:2:3: error: the workflow has no root task: every task depends on another, so none can start\n"
        "r.yaml:3:46: error: depends_on names unknown task 'tset' (did you mean 'test'?)\n"
        "r.yaml:4:46: error: depends_on names unknown task 'biuld' (did you mean 'build'?)\n");
}

TEST_CASE("a long chain of dependencies is checked without recursion") {
  std::string text = "workflow:\n  tasks:\n    - {name: t0, uses: s.run}\n";
  for (int i = 1; i < 20'000; ++i)
    text +=
        "    - {name: t" + std::to_string(i) + ", uses: s.run, depends_on: t" + std::to_string(i - 1) + "}\n";
  text += "    - {name: t0x, uses: s.run, depends_on: t19999}\n";
  auto options = no_environment();
  options.limits.max_nodes = 1'000'000;
  options.limits.max_bytes = 4 << 20;
  const auto result = load_config_string(text, "chain.yaml", options);
  INFO(diagnostics(result));
  CHECK(result.ok());
  CHECK(result.config.workflow->tasks.size() == 20'001);
}

TEST_CASE("params are checked against the kind's declaration and defaults are filled in") {
  taskhive::test::FakeOptions fake;
  const auto result = load_config_string(minimal, "p.yaml", fake.options);
  INFO(diagnostics(result));
  REQUIRE(result.ok());
  const auto& params = result.config.pipeline->source.params;
  CHECK(params.size() == 4);
  CHECK(params.at("pattern").value == "*");
  CHECK(params.at("pattern").defaulted);
  CHECK(params.at("max_depth").value == "16");
  CHECK(params.at("follow").value == "false");
  CHECK_FALSE(params.at("root").defaulted);
  CHECK(result.config.pipeline->sinks[0].params.at("prefix").value.empty());

  const auto bad = load_config_string(R"(pipeline:
  source: {name: f, uses: fs.walk, params: {rot: /x, max_depth: deep, follow: 1}}
  sink: {name: p, uses: out.file, params: {path: /out, append: true}}
)",
                                      "p.yaml", fake.options);
  CHECK(
      diagnostics(bad) ==
      "p.yaml:2:11: error: missing required param 'root' for fs.walk\n"
      "p.yaml:2:45: error: unknown param 'rot' for fs.walk (did you mean 'root'?); it takes: root, pattern, "
      "max_depth, follow\n"
      "p.yaml:2:65: error: param 'max_depth' of fs.walk expects an integer, got 'deep'\n"
      "p.yaml:2:79: error: param 'follow' of fs.walk expects true or false, got '1'\n");
}

TEST_CASE("plugin kinds: unknown ones list what is available, and the type must fit the place") {
  taskhive::test::FakeOptions fake;
  const auto result = load_config_string(R"(pipeline:
  source: {name: f, uses: fs.wlak, params: {root: /}}
  stages:
    - {name: a, uses: out.stdout}
    - {name: b, uses: broken.thing}
  sink: {name: p, uses: out.stdout}
)",
                                         "k.yaml", fake.options);
  CHECK(
      diagnostics(result) ==
      "k.yaml:2:27: error: unknown plugin kind 'fs.wlak' (did you mean 'fs.walk'?); available source kinds: "
      "fs.walk\n"
      "k.yaml:4:23: error: 'out.stdout' is a sink kind, but a transform kind is needed here; available "
      "transform "
      "kinds: fs.read, text.upper, text.grep\n"
      "k.yaml:5:23: error: unknown plugin kind 'broken.thing'; available transform kinds: fs.read, "
      "text.upper, "
      "text.grep\n");
}

TEST_CASE("a plugin name may hold dots") {
  taskhive::test::FakeOptions fake;
  const auto result = load_config_string(R"(workflow:
  tasks:
    - {name: p, uses: acme.tools.ping, params: {host: h, ratio: 0.25}}
    - {name: q, uses: acme.tools.ping, params: {host: h, ratio: lots, count: 2.5}}
)",
                                         "d.yaml", fake.options);
  CHECK(diagnostics(result) ==
        "d.yaml:4:65: error: param 'ratio' of acme.tools.ping expects a number, got 'lots'\n"
        "d.yaml:4:78: error: param 'count' of acme.tools.ping expects an integer, got '2.5'\n");
  const auto& task = result.config.workflow->tasks[0];
  REQUIRE(task.uses);
  CHECK(task.uses->plugin == "acme.tools");
  CHECK(task.uses->kind == "ping");
  CHECK(task.params.at("count").value == "3");
}

TEST_CASE("without plugin records, kinds and params are only checked for form") {
  const auto result = load_config_string(R"(pipeline:
  source: {name: f, uses: anything.at.all, params: {whatever: 1}}
  sink: {name: p, uses: nodot}
)",
                                         "f.yaml", no_environment());
  CHECK(diagnostics(result) == "f.yaml:3:25: error: expected plugin.kind (such as fs.walk), got 'nodot'\n");
  CHECK(result.config.pipeline->source.uses.plugin == "anything.at");
}

TEST_CASE("an empty list of available plugins makes every kind unknown") {
  std::vector<taskhive::PluginRecord> none;
  auto options = no_environment();
  options.plugins = none;  // as the CLI will: options.plugins = registry.records()
  const auto result = load_config_string(minimal, "n.yaml", options);
  CHECK(
      diagnostics(result) ==
      "n.yaml:2:31: error: unknown plugin kind 'fs.walk'; no plugins were found: name a plugin directory "
      "in plugins.dirs, with --plugins DIR, or in TASKHIVE_PLUGIN_PATH\n"
      "n.yaml:3:29: error: unknown plugin kind 'out.stdout'; no plugins were found: name a plugin directory "
      "in plugins.dirs, with --plugins DIR, or in TASKHIVE_PLUGIN_PATH\n");
}

TEST_CASE("pipelines of workflow tasks load from files relative to the config") {
  TempDir dir;
  dir.write("conf/main.yaml", R"(plugins: {dirs: [../plugins]}
workflow:
  tasks:
    - {name: a, pipeline: parts/p.yaml}
    - {name: b, pipeline: parts/missing.yaml, depends_on: a}
    - {name: c, pipeline: parts/bad.yaml, depends_on: a}
)");
  dir.write("conf/parts/p.yaml", "scheduler: {workers: 2}\n" + std::string(minimal));
  dir.write("conf/parts/bad.yaml", "pipeline:\n  source: {name: f, uses: fs.walk}\n");
  const auto result = taskhive::load_config(dir.path / "conf/main.yaml", no_environment());
  const std::string main = (dir.path / "conf/main.yaml").string();
  const std::string parts = (dir.path / "conf/parts").string();
  CHECK(diagnostics(result) ==
        main + ":5:27: error: cannot read pipeline file '" + parts +
            "/missing.yaml': No such file or directory\n" + parts +
            "/bad.yaml:2:3: error: missing required key 'sink' in pipeline\n" + parts +
            "/p.yaml:1:1: warning: 'scheduler' is ignored in a pipeline file included by a workflow: the "
            "workflow's config applies\n");
  const auto& tasks = result.config.workflow->tasks;
  REQUIRE(tasks[0].pipeline);
  CHECK(*tasks[0].pipeline_file == "parts/p.yaml");
  CHECK(*tasks[0].pipeline->source.name == "files");
  CHECK(result.config.directory == dir.path / "conf");
  CHECK(result.config.resolve(*result.config.plugins.dirs[0]) == dir.path / "conf/../plugins");
}

TEST_CASE("a config file that cannot be read") {
  TempDir dir;
  const auto missing = taskhive::load_config(dir.path / "nope.yaml", no_environment());
  CHECK(diagnostics(missing) ==
        (dir.path / "nope.yaml").string() + ": error: cannot read the config: No such file or directory\n");
  const auto directory = taskhive::load_config(dir.path, no_environment());
  CHECK(diagnostics(directory) ==
        dir.path.string() + ": error: cannot read the config: not a regular file\n");
}

TEST_CASE("print_config writes every default, and printing what it printed changes nothing") {
  taskhive::test::FakeOptions fake;
  const auto result = load_config_string(minimal, "m.yaml", fake.options);
  REQUIRE(result.ok());
  const std::string printed = taskhive::print_config(result.config);
  CHECK(printed == R"(scheduler:
  workers: auto
  queue_capacity: 100000
  order: aging
plugins:
  dirs: []
  rescan_interval: none
  probe: true
pipeline:
  source:
    name: files
    uses: fs.walk
    params:
      follow: false
      max_depth: 16
      pattern: "*"
      root: /srv
    max_in_flight: 64
    priority: 0
    retry:
      limit: 0
      backoff:
        initial: 100ms
        factor: 2
        max: 30s
        jitter: true
    timeout: none
    on_error: fail
  stages: []
  sink:
    - name: print
      uses: out.stdout
      params:
        prefix: ""
      concurrency: serial
      max_in_flight: 64
      priority: 0
      retry:
        limit: 0
        backoff:
          initial: 100ms
          factor: 2
          max: 30s
          jitter: true
      timeout: none
      on_error: fail
  ordered: false
)");
  const auto again = load_config_string(printed, "again.yaml", fake.options);
  REQUIRE(again.diagnostics.empty());
  CHECK(taskhive::print_config(again.config) == printed);
}

TEST_CASE("printing keeps awkward strings intact") {
  const auto result = load_config_string(R"(pipeline:
  source:
    name: "odd: name"
    uses: fs.walk
    params:
      "key with space": "line1\nline2\t\"quoted\" \\ back"
      dollar: "$$HOME and $${x}"
      "$${key}": "keys are not substituted"
      empty: ""
      "null": "null"
      tilde: "~"
      unicode: "h\u00e9llo"
      leading: "-dash"
      hash: "a #b"
  sink: {name: p, uses: o.p}
)",
                                         "a.yaml", no_environment());
  REQUIRE(result.ok());
  const auto& params = result.config.pipeline->source.params;
  CHECK(params.at("dollar").value == "$HOME and ${x}");
  const std::string printed = taskhive::print_config(result.config);
  const auto again = load_config_string(printed, "again.yaml", no_environment());
  INFO(printed);
  REQUIRE(again.ok());
  CHECK(again.config.pipeline->source.params.at("dollar").value == "$HOME and ${x}");
  CHECK(again.config.pipeline->source.params.contains("$${key}"));
  CHECK(again.config.pipeline->source.params.at("key with space").value ==
        "line1\nline2\t\"quoted\" \\ back");
  CHECK(again.config.pipeline->source.params.at("null").value == "null");
  CHECK(again.config.pipeline->source.params.at("tilde").value == "~");
  CHECK(again.config.pipeline->source.params.at("empty").value.empty());
  CHECK(*again.config.pipeline->source.name == "odd: name");
  CHECK(taskhive::print_config(again.config) == printed);
}

TEST_CASE("diagnostics format and order") {
  taskhive::Diagnostics diags;
  diags.error({"b.yaml", 2, 1}, "second file");
  diags.warning({"a.yaml", 10, 3}, "late");
  diags.error({"a.yaml", 2, 7}, "early");
  diags.error({"a.yaml", 2, 7}, "early");  // a repeat (an alias shows the same node twice) is kept once
  diags.error({"a.yaml", 0, 0}, "whole file");
  CHECK(diags.error_count() == 3);
  CHECK(diags.warning_count() == 1);
  CHECK(taskhive::format_diagnostics(diags.sorted()) ==
        "a.yaml: error: whole file\n"
        "a.yaml:2:7: error: early\n"
        "a.yaml:10:3: warning: late\n"
        "b.yaml:2:1: error: second file\n");
}
