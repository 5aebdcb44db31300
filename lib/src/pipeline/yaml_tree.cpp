#include "yaml_tree.hpp"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <new>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

namespace taskhive::detail {
namespace {

// A problem that ends parsing, thrown out of the event handler (and so out of yaml-cpp's recursion, which
// is why the depth check there bounds the stack).
struct Stop {
  int line;
  int col;
  std::string message;
};

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t';
}

// Decodes one UTF-8 sequence at text[i]; returns its length, or 0 when malformed (overlong, surrogate, past
// U+10FFFF, truncated).
std::size_t utf8_length(std::string_view text, std::size_t i, std::uint32_t& code) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char b0 = byte(0);
  std::size_t n = 0;
  std::uint32_t min = 0;
  if (b0 < 0x80) {
    code = b0;
    return 1;
  } else if ((b0 & 0xE0) == 0xC0) {
    n = 2, code = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, code = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, code = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((byte(k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(k) & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return n;
}

// The checks yaml-cpp is not asked to do, or would do badly, on the raw text: it must be UTF-8 text without
// control characters, indented with spaces, and its flow collections ('[' and '{') no deeper than max_depth,
// so the recursive parser is never handed a deep nest. Block nesting cannot go deeper than the parser's
// events say, and the event handler stops that at max_depth.
bool prescan(std::string_view text, const std::string& file, const ConfigLimits& limits, Diagnostics& diags) {
  if (text.size() > limits.max_bytes) {
    diags.error({file, 1, 1}, fmt::format("the file is {} bytes, over the limit of {} (limits.max_bytes)",
                                          text.size(), limits.max_bytes));
    return false;
  }
  int line = 1;
  int col = 1;
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t code = 0;
    const std::size_t n = utf8_length(text, i, code);
    if (n == 0) {
      diags.error({file, line, col}, fmt::format("invalid UTF-8 (byte 0x{:02x}): a config must be UTF-8 text",
                                                 static_cast<unsigned char>(text[i])));
      return false;
    }
    if (code == 0) {
      diags.error({file, line, col}, "NUL byte: a config must be text, not binary data");
      return false;
    }
    const bool control = (code < 0x20 && code != '\t' && code != '\n' && code != '\r') || code == 0x7F ||
                         (code >= 0x80 && code < 0xA0 && code != 0x85);
    if (control) {
      diags.error({file, line, col}, fmt::format("control character U+{:04X}: a config must be text", code));
      return false;
    }
    if (code == '\n') {
      ++line, col = 1;
    } else {
      ++col;
    }
    i += n;
  }

  // Line by line: quotes may span lines; comments and block scalars (| and >) are skipped.
  bool in_double = false;
  bool in_single = false;
  int block_indent = -1;  // the indentation of the line that opened a block scalar
  std::size_t depth = 0;
  line = 0;
  for (std::size_t start = 0; start <= text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view row = text.substr(start, end - start);
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    start = end + 1;
    ++line;
    std::size_t indent = 0;
    while (indent < row.size() && row[indent] == ' ') ++indent;
    const bool blank = row.find_first_not_of(" \t") == std::string_view::npos;
    if (block_indent >= 0) {
      if (blank || static_cast<int>(indent) > block_indent) continue;
      block_indent = -1;
    }
    if (!in_double && !in_single && depth == 0 && indent < row.size() && row[indent] == '\t') {
      const std::size_t content = row.find_first_not_of(" \t");
      if (content != std::string_view::npos && row[content] != '#') {
        diags.error({file, line, static_cast<int>(indent) + 1},
                    "tab character in indentation: YAML allows only spaces for indentation");
        return false;
      }
    }
    std::size_t i = (in_double || in_single) ? 0 : indent;
    std::size_t content_end = row.size();
    for (; i < row.size(); ++i) {
      const char c = row[i];
      if (in_double) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          in_double = false;
        }
        continue;
      }
      if (in_single) {
        if (c == '\'') {
          if (i + 1 < row.size() && row[i + 1] == '\'') {
            ++i;
          } else {
            in_single = false;
          }
        }
        continue;
      }
      const bool at_token_start =
          i == indent || is_space(row[i - 1]) || row[i - 1] == '[' || row[i - 1] == '{' || row[i - 1] == ',';
      if (c == '#' && (i == 0 || is_space(row[i - 1]))) {
        content_end = i;
        break;
      }
      if ((c == '"' || c == '\'') && at_token_start) {
        (c == '"' ? in_double : in_single) = true;
      } else if ((c == '[' || c == '{') && at_token_start) {
        if (++depth > limits.max_depth) {
          diags.error({file, line, static_cast<int>(i) + 1},
                      fmt::format("nesting deeper than {} levels (limits.max_depth)", limits.max_depth));
          return false;
        }
      } else if ((c == ']' || c == '}') && depth > 0) {
        --depth;
      }
    }
    if (in_double || in_single || depth > 0) continue;
    // A block scalar header ends its line: `key: |`, `- >-`, `key: |2+`.
    std::string_view content = row.substr(0, content_end);
    while (!content.empty() && is_space(content.back())) content.remove_suffix(1);
    std::size_t k = content.size();
    while (k > 0 &&
           (content[k - 1] == '+' || content[k - 1] == '-' ||
            (content[k - 1] >= '1' && content[k - 1] <= '9')) &&
           content.size() - k < 2)
      --k;
    if (k > 0 && (content[k - 1] == '|' || content[k - 1] == '>') &&
        (k == 1 || is_space(content[k - 2]) || content[k - 2] == ':' || content[k - 2] == '-'))
      block_indent = static_cast<int>(indent);
  }
  return true;
}

class TreeBuilder final : public YAML::EventHandler {
 public:
  TreeBuilder(YamlDocument& doc, const ConfigLimits& limits) : doc_(doc), limits_(limits) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_++ > 0)
      throw Stop{mark.line + 1, mark.column + 1,
                 "a second YAML document starts here; a config is one document"};
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    YamlNode& node = make(mark, YamlNode::Type::null, anchor);
    // A value left empty has no text of its own, and yaml-cpp places it at whatever comes next: place it at
    // its key instead, which is where a message about it should point.
    if (!open_.empty() && open_.back().key != nullptr) {
      node.line = open_.back().key->line;
      node.col = open_.back().key->col;
      node.offset = open_.back().key->offset;
    }
    node.complete = true;
    attach(node);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    const YamlNode* target = anchor < anchors_.size() ? anchors_[anchor] : nullptr;
    if (target == nullptr)
      throw Stop{mark.line + 1, mark.column + 1, "alias to an anchor that is not defined"};
    if (!target->complete)
      throw Stop{mark.line + 1, mark.column + 1, "alias inside the node it refers to: a recursive alias"};
    count(mark, target->size);
    attach(*target);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    YamlNode& node = make(mark, YamlNode::Type::scalar, anchor);
    node.value = value;
    node.quoted = tag != "?";  // yaml-cpp tags plain scalars "?", quoted and block ones "!"
    node.complete = true;
    attach(node);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(make(mark, YamlNode::Type::sequence, anchor), mark);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(make(mark, YamlNode::Type::mapping, anchor), mark);
  }
  void OnMapEnd() override { close(); }

 private:
  void count(const YAML::Mark& mark, std::size_t n) {
    nodes_ = std::min(nodes_ + n, limits_.max_nodes + 1);
    if (nodes_ > limits_.max_nodes)
      throw Stop{
          mark.line + 1, mark.column + 1,
          fmt::format("more than {} nodes (limits.max_nodes; an alias counts as the nodes it stands for)",
                      limits_.max_nodes)};
  }

  YamlNode& make(const YAML::Mark& mark, YamlNode::Type type, YAML::anchor_t anchor) {
    count(mark, 1);
    YamlNode& node = doc_.nodes.emplace_back();
    node.type = type;
    node.line = mark.line + 1;
    node.col = mark.column + 1;
    node.offset = mark.pos < 0 ? 0 : static_cast<std::size_t>(mark.pos);
    if (anchor != YAML::NullAnchor) {
      if (anchors_.size() <= anchor) anchors_.resize(anchor + 1, nullptr);
      anchors_[anchor] = &node;
    }
    return node;
  }

  void open(YamlNode& node, const YAML::Mark& mark) {
    if (open_.size() + 1 > limits_.max_depth)
      throw Stop{mark.line + 1, mark.column + 1,
                 fmt::format("nesting deeper than {} levels (limits.max_depth)", limits_.max_depth)};
    attach(node);
    open_.push_back({&node, nullptr});
  }

  void close() {
    YamlNode& node = *open_.back().node;
    std::size_t size = 1;
    for (const YamlNode* item : node.items) size += item->size;
    for (const auto& [key, value] : node.entries) size += key->size + value->size;
    node.size = std::min(size, limits_.max_nodes + 1);
    node.complete = true;
    open_.pop_back();
  }

  void attach(const YamlNode& node) {
    if (open_.empty()) {
      doc_.root = &node;
      return;
    }
    Open& parent = open_.back();
    if (parent.node->type == YamlNode::Type::sequence) {
      parent.node->items.push_back(&node);
    } else if (parent.key == nullptr) {
      parent.key = &node;
    } else {
      parent.node->entries.emplace_back(parent.key, &node);
      parent.key = nullptr;
    }
  }

  struct Open {
    YamlNode* node;
    const YamlNode* key;  // a mapping's key waiting for its value
  };
  YamlDocument& doc_;
  const ConfigLimits& limits_;
  std::vector<Open> open_;
  std::vector<const YamlNode*> anchors_;
  std::size_t nodes_ = 0;
  int documents_ = 0;
};

}  // namespace

YamlDocument parse_yaml(std::string_view text, const std::string& file, const ConfigLimits& limits,
                        Diagnostics& diags) {
  YamlDocument doc;
  if (!prescan(text, file, limits, diags)) return doc;
  std::istringstream in{std::string(text)};
  try {
    YAML::Parser parser(in);
    TreeBuilder builder(doc, limits);
    if (parser.HandleNextDocument(builder)) parser.HandleNextDocument(builder);  // a second one throws
  } catch (const Stop& stop) {
    diags.error({file, stop.line, stop.col}, stop.message);
    doc.root = nullptr;
  } catch (const YAML::Exception& e) {
    const bool placed = e.mark.line >= 0 && e.mark.column >= 0;
    diags.error({file, placed ? e.mark.line + 1 : 1, placed ? e.mark.column + 1 : 1},
                "invalid YAML: " + e.msg);
    doc.root = nullptr;
  } catch (const std::bad_alloc&) {
    diags.error({file, 1, 1}, "out of memory while parsing");
    doc.root = nullptr;
  }
  return doc;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rows suffice for the transposition case.
  std::vector<std::size_t> two(b.size() + 1), one(b.size() + 1), row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) one[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({one[j] + 1, row[j - 1] + 1, one[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        row[j] = std::min(row[j], two[j - 2] + 1);
    }
    std::swap(two, one);
    std::swap(one, row);
  }
  return one[b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  // A third of the word's length, 1 to 3 edits: "workrs" finds "workers", "x" finds nothing much.
  const std::size_t allowed = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  std::string best;
  std::size_t best_distance = allowed + 1;
  for (const auto& candidate : candidates) {
    if (word.size() > 64 || candidate.empty()) continue;  // long garbage: not a typo, and not worth the time
    const std::size_t d = edit_distance(word, candidate);
    if (d < best_distance && d < candidate.size()) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

}  // namespace taskhive::detail
