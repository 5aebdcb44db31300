#pragma once
// Graphviz DOT for `taskhive graph CONFIG`: a pipeline or a workflow drawn as a graph.
//
// @code
//   auto loaded = taskhive::load_config("configs/wordcount.yaml");
//   if (!loaded.ok()) return 2;
//   std::cout << taskhive::to_dot(loaded.config);      // | dot -Tsvg > wordcount.svg
// @endcode
//
// A pipeline is drawn left to right: the source, the stages in order, then the sinks. Each node's label is
// the stage's name, its `uses`, its concurrency, and its on_error when that is not `fail`. A stage with
// on_error: dead_letter gets a dashed edge to its dead-letter sink; a sink that some stage names as its dead
// letter receives only those items, so the main stream is drawn to the other sinks.
//
// A workflow is drawn as its tasks with an edge from each dependency to its dependent, labelled with the
// dependent's `if:` when that is not `success`. `uses:` tasks are boxes; `pipeline:` tasks are 3-D boxes
// whose label lists the pipeline's stages (or names its file).
//
// Every label is escaped for DOT: quotes, backslashes and `&` are escaped, a newline becomes a DOT line
// break, control characters and invalid UTF-8 become U+FFFD, and non-ASCII characters become numeric
// entities (&#233;), so any name from a user's YAML yields a graph `dot` accepts. Node ids are generated
// (s0, s1, ... and t0, t1, ...), never taken from names.

#include <string>
#include <string_view>

#include "taskhive/config.hpp"

namespace taskhive {

/// The config's pipeline or workflow as a DOT digraph (an empty digraph when it has neither).
std::string to_dot(const Config& config);

/// `text` as a quoted DOT string, escaped as described above: "a \"b\"\nc".
std::string dot_quote(std::string_view text);

}  // namespace taskhive
