#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "plugins/temp_dir.hpp"
#include "taskhive/config.hpp"
#include "taskhive/graph_dot.hpp"

using taskhive::Config;
using taskhive::dot_quote;
using taskhive::Stage;
using taskhive::to_dot;

namespace {

Stage stage(std::string name, std::string plugin, std::string kind, std::size_t concurrency = 1) {
  Stage s;
  s.name.value = std::move(name);
  s.uses = taskhive::PluginRef{std::move(plugin), std::move(kind), {}};
  s.concurrency.value = concurrency;
  return s;
}

taskhive::Pipeline wordcount() {
  taskhive::Pipeline p;
  p.source = stage("walk", "fs", "walk");
  p.stages.push_back(stage("upper", "text", "upper", 4));
  p.stages.back().on_error.value = taskhive::OnError::dead_letter;
  p.stages.back().dead_letter.value = "rejects";
  p.stages.push_back(stage("count", "text", "count", taskhive::unlimited_concurrency));
  p.sinks.push_back(stage("out", "fs", "write"));
  p.sinks.push_back(stage("rejects", "fs", "write"));
  return p;
}

taskhive::WorkflowTask task(std::string name, std::vector<std::string> depends_on = {},
                            taskhive::RunIf run_if = taskhive::RunIf::success) {
  taskhive::WorkflowTask t;
  t.name.value = std::move(name);
  for (auto& d : depends_on) t.depends_on.push_back({std::move(d), {}});
  t.run_if.value = run_if;
  return t;
}

taskhive::Workflow release() {
  taskhive::Workflow w;
  w.tasks.push_back(task("build"));
  w.tasks.back().uses = taskhive::PluginRef{"make", "run", {}};
  w.tasks.back().priority.value = 5;
  w.tasks.push_back(task("test", {"build"}));
  w.tasks.back().pipeline = taskhive::Pipeline{};
  w.tasks.back().pipeline->source = stage("cases", "t", "cases");
  w.tasks.back().pipeline->stages.push_back(stage("run", "t", "run"));
  w.tasks.back().pipeline->sinks.push_back(stage("junit", "t", "junit"));
  w.tasks.back().retry.limit.value = 2;
  w.tasks.push_back(task("index", {"build"}));
  w.tasks.back().pipeline = taskhive::Pipeline{};
  w.tasks.back().pipeline_file.value = "pipelines/index.yaml";
  w.tasks.push_back(task("report", {"test", "index"}, taskhive::RunIf::always));
  w.tasks.back().uses = taskhive::PluginRef{"mail", "send", {}};
  w.tasks.back().timeout.value = taskhive::ConfigDuration(90'000);
  return w;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("a pipeline is drawn from source through stages to sinks", "[graph]") {
  Config config;
  config.pipeline = wordcount();
  CHECK(to_dot(config) ==
        "digraph pipeline {\n"
        "  rankdir=LR;\n"
        "  node [shape=box];\n"
        "  s0 [label=\"walk\\nuses: fs.walk\\nconcurrency: serial\", shape=cds];\n"
        "  s1 [label=\"upper\\nuses: text.upper\\nconcurrency: 4\\non_error: dead_letter\", shape=box];\n"
        "  s2 [label=\"count\\nuses: text.count\\nconcurrency: unlimited\", shape=box];\n"
        "  s3 [label=\"out\\nuses: fs.write\\nconcurrency: serial\", shape=folder];\n"
        "  s4 [label=\"rejects\\nuses: fs.write\\nconcurrency: serial\", shape=folder];\n"
        "  s0 -> s1;\n"
        "  s1 -> s2;\n"
        "  s2 -> s3;\n"
        "  s1 -> s4 [style=dashed, label=\"dead letter\"];\n"
        "}\n");
}

TEST_CASE("a pipeline whose only sink is a dead letter still shows the stream ending there", "[graph]") {
  Config config;
  config.pipeline = taskhive::Pipeline{};
  config.pipeline->source = stage("in", "a", "b");
  config.pipeline->source.on_error.value = taskhive::OnError::skip;
  config.pipeline->sinks.push_back(stage("out", "a", "c"));
  CHECK(to_dot(config) ==
        "digraph pipeline {\n"
        "  rankdir=LR;\n"
        "  node [shape=box];\n"
        "  s0 [label=\"in\\nuses: a.b\\nconcurrency: serial\\non_error: skip\", shape=cds];\n"
        "  s1 [label=\"out\\nuses: a.c\\nconcurrency: serial\", shape=folder];\n"
        "  s0 -> s1;\n"
        "}\n");
}

TEST_CASE("a workflow is drawn as tasks with their dependencies", "[graph]") {
  Config config;
  config.workflow = release();
  CHECK(to_dot(config) ==
        "digraph workflow {\n"
        "  rankdir=LR;\n"
        "  node [shape=box];\n"
        "  t0 [label=\"build\\nuses: make.run\\npriority: 5\"];\n"
        "  t1 [label=\"test\\npipeline: cases -> run -> junit\\nretry: 2\", shape=box3d];\n"
        "  t2 [label=\"index\\npipeline: pipelines/index.yaml\", shape=box3d];\n"
        "  t3 [label=\"report\\nuses: mail.send\\ntimeout: 1m30s\"];\n"
        "  t0 -> t1;\n"
        "  t0 -> t2;\n"
        "  t1 -> t3 [label=\"if: always\", style=dashed];\n"
        "  t2 -> t3 [label=\"if: always\", style=dashed];\n"
        "}\n");
}

TEST_CASE("a config with neither is an empty graph", "[graph]") {
  CHECK(to_dot(Config{}) == "digraph config {\n}\n");
}

TEST_CASE("labels are escaped whatever the names hold", "[graph][escape]") {
  CHECK(dot_quote("plain") == "\"plain\"");
  CHECK(dot_quote("say \"hi\"") == "\"say \\\"hi\\\"\"");
  CHECK(dot_quote("C:\\dir\\n") == "\"C:\\\\dir\\\\n\"");
  CHECK(dot_quote("two\nlines") == "\"two\\nlines\"");
  CHECK(dot_quote("tab\there") == "\"tab here\"");
  CHECK(dot_quote("a & b &amp;") == "\"a &amp; b &amp;amp;\"");
  CHECK(dot_quote("caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x90\x9d") == "\"caf&#233; &#8594; &#128029;\"");
  CHECK(dot_quote(std::string("nul\0bell\a", 9)) == "\"nul&#65533;bell&#65533;\"");
  CHECK(dot_quote("bad \xff \xc3 end") == "\"bad &#65533; &#65533; end\"");
  CHECK(dot_quote("overlong \xc0\xaf surrogate \xed\xa0\x80") ==
        "\"overlong &#65533;&#65533; surrogate &#65533;&#65533;&#65533;\"");
  CHECK(dot_quote("") == "\"\"");
}

TEST_CASE("dot renders the graphs, hostile names included", "[graph][dot]") {
  if (std::system("command -v dot >/dev/null 2>&1") != 0) {
    WARN("the dot executable is not installed (Debian: graphviz); not rendering");
    return;
  }
  Config pipeline;
  pipeline.pipeline = wordcount();
  pipeline.pipeline->stages[1].name.value = "weird \"name\" \\ with\nnewline & caf\xc3\xa9 \xff";
  Config workflow;
  workflow.workflow = release();
  workflow.workflow->tasks[0].name.value = "build \"all\" \\";
  workflow.workflow->tasks[1].depends_on[0].value = "build \"all\" \\";
  for (const Config* config : {&pipeline, &workflow}) {
    taskhive::test::TempDir dir;
    {
      std::ofstream out(dir / "graph.dot");
      out << to_dot(*config);
    }
    const std::string command = "dot -Tsvg '" + (dir / "graph.dot").string() + "' -o '" +
                                (dir / "graph.svg").string() + "' 2>'" + (dir / "err.txt").string() + "'";
    const int status = std::system(command.c_str());
    INFO(to_dot(*config));
    INFO(read_file(dir / "err.txt"));
    REQUIRE(status == 0);
    CHECK(read_file(dir / "err.txt").empty());  // no warnings either
    const auto svg = read_file(dir / "graph.svg");
    if (config == &pipeline) {
      for (const char* name : {">walk<", ">upper<", ">out<", ">rejects<", "weird &quot;name&quot;", "caf"}) {
        CHECK_THAT(svg, Catch::Contains(name));
      }
    } else {
      for (const char* name : {"build &quot;all&quot;", ">test<", ">index<", ">report<", "if: always"}) {
        CHECK_THAT(svg, Catch::Contains(name));
      }
    }
  }
}
