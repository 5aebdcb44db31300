#pragma once
// YAML text -> a small tree of nodes with positions, built from yaml-cpp's parser events rather than its Node
// API, so that limits are enforced while parsing: the text is checked (bytes, encoding, tabs, bracket depth)
// before yaml-cpp sees it, and nesting and node counts are checked on every event, aliases counted as the
// nodes they stand for. An alias shares its anchor's node (never copied), so a walk of the tree visits at
// most max_nodes nodes whatever the aliases do.

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "taskhive/config.hpp"
#include "taskhive/diagnostics.hpp"

namespace taskhive::detail {

struct YamlNode {
  enum class Type { null, scalar, sequence, mapping };
  Type type = Type::null;
  int line = 0;            // 1-based
  int col = 0;             // 1-based
  std::size_t offset = 0;  // byte offset of the node in the text
  bool quoted = false;     // a scalar written in quotes (or as a block scalar): never null, never a keyword
  std::string value;       // scalar text
  std::vector<const YamlNode*> items;                                // sequence
  std::vector<std::pair<const YamlNode*, const YamlNode*>> entries;  // mapping, in order written
  std::size_t size = 1;   // nodes this one stands for, itself included (for the alias budget)
  bool complete = false;  // its end event was seen (an alias to an open node would make a cycle)
};

/// The tree of one document. Nodes live in `nodes` (stable addresses); root is null when parsing failed or
/// the document is empty.
struct YamlDocument {
  std::deque<YamlNode> nodes;
  const YamlNode* root = nullptr;
};

/// Checks `text` and parses it; every problem goes to `diags` at its position in `file`. Returns a document
/// whose root is null if nothing usable was read. Never throws for bad input.
YamlDocument parse_yaml(std::string_view text, const std::string& file, const ConfigLimits& limits,
                        Diagnostics& diags);

/// Levenshtein distance with adjacent transpositions counted as one edit (optimal string alignment).
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word` if it is close enough to be a plausible typo, else empty.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace taskhive::detail
