// YAML tree -> Config, and the validation that needs the whole of it (names, references, cycles, plugins).
// Every problem is reported and reading goes on, so the user sees all of them at once.

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <set>
#include <system_error>
#include <tuple>

#include <fmt/format.h>

#include "taskhive/config.hpp"
#include "yaml_tree.hpp"

namespace taskhive {

std::optional<std::string> process_environment(const std::string& name) {
  const char* value = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): read-only use
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

std::string_view to_string(ConfigOrder order) noexcept {
  return order == ConfigOrder::aging ? "aging" : "strict";
}

std::string_view to_string(OnError on_error) noexcept {
  switch (on_error) {
    case OnError::fail:
      return "fail";
    case OnError::skip:
      return "skip";
    case OnError::dead_letter:
      return "dead_letter";
  }
  return "fail";
}

std::string_view to_string(RunIf run_if) noexcept {
  switch (run_if) {
    case RunIf::success:
      return "success";
    case RunIf::failure:
      return "failure";
    case RunIf::always:
      return "always";
  }
  return "success";
}

namespace {
constexpr std::int64_t max_duration_ms = 8760LL * 3600 * 1000;  // a year: beyond it, a typo
}

namespace {

std::optional<ConfigDuration> parse_duration_up_to(std::string_view text, std::int64_t limit_ms) {
  if (text == "0") return ConfigDuration::zero();
  if (text.empty()) return std::nullopt;
  std::int64_t total = 0;
  int last_rank = 5;  // units must come largest first, each at most once: "1m30s", not "30s1m"
  while (!text.empty()) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0 || digits > 12) return std::nullopt;
    std::int64_t n = 0;
    std::from_chars(text.data(), text.data() + digits, n);
    text.remove_prefix(digits);
    std::int64_t scale = 0;
    int rank = 0;
    if (text.starts_with("ms")) {
      scale = 1, rank = 1, text.remove_prefix(2);
    } else if (text.starts_with("s")) {
      scale = 1000, rank = 2, text.remove_prefix(1);
    } else if (text.starts_with("m")) {
      scale = 60'000, rank = 3, text.remove_prefix(1);
    } else if (text.starts_with("h")) {
      scale = 3'600'000, rank = 4, text.remove_prefix(1);
    } else {
      return std::nullopt;
    }
    if (rank >= last_rank) return std::nullopt;
    last_rank = rank;
    if (n > limit_ms / scale) return std::nullopt;
    total += n * scale;
    if (total > limit_ms) return std::nullopt;
  }
  return ConfigDuration(total);
}

}  // namespace

std::optional<ConfigDuration> parse_duration(std::string_view text) {
  return parse_duration_up_to(text, max_duration_ms);
}

std::string format_duration(ConfigDuration duration) {
  std::int64_t ms = duration.count();
  if (ms <= 0) return "0s";
  std::string out;
  for (const auto& [scale, unit] :
       {std::pair<std::int64_t, const char*>{3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}}) {
    if (ms >= scale) {
      out += fmt::format("{}{}", ms / scale, unit);
      ms %= scale;
    }
  }
  return out;
}

bool ConfigResult::ok() const noexcept {
  return error_count() == 0;
}

std::size_t ConfigResult::error_count() const noexcept {
  return static_cast<std::size_t>(
      std::count_if(diagnostics.begin(), diagnostics.end(),
                    [](const Diagnostic& d) { return d.severity == Severity::error; }));
}

namespace detail {
namespace {

using Type = YamlNode::Type;

std::string quote(std::string_view text) {
  constexpr std::size_t max = 40;
  std::string shown(text.substr(0, max));
  for (char& c : shown)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return "'" + shown + (text.size() > max ? "...'" : "'");
}

std::string describe(const YamlNode* node) {
  if (node == nullptr || node->type == Type::null) return "nothing";
  if (node->type == Type::mapping) return "a mapping";
  if (node->type == Type::sequence) return "a list";
  return quote(node->value);
}

std::string suggest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best = closest_match(word, candidates);
  return best.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", best);
}

std::string join(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, ", "));
}

bool is_variable_name(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

std::optional<std::int64_t> parse_int(std::string_view text) {
  if (text.starts_with('+')) text.remove_prefix(1);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> parse_float(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  const std::string copy(text);
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || errno == ERANGE || !std::isfinite(value)) return std::nullopt;
  if (copy.find_first_of("xXnN") != std::string::npos) return std::nullopt;  // no hex, inf or nan
  return value;
}

std::optional<bool> parse_bool(std::string_view text) {
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  return std::nullopt;
}

struct Field {
  const YamlNode* key = nullptr;
  const YamlNode* value = nullptr;
};

class Reader;

struct PosLess {
  bool operator()(const SourcePos& a, const SourcePos& b) const {
    return std::tie(a.file, a.line, a.col) < std::tie(b.file, b.line, b.col);
  }
};

// The keys of one mapping: unknown ones (with a suggestion) and repeated ones are reported by check().
class Fields {
 public:
  // `extensions`: keys starting with "x-" are ignored (a place for anchors, as in Compose files).
  Fields(Reader& reader, const YamlNode* node, std::initializer_list<std::string_view> known,
         bool extensions = false);
  // Reports what is wrong with the keys; `where` names the mapping in messages ("scheduler", "stage 'x'").
  void check(std::string_view where);
  const Field* get(std::string_view key) const {
    for (const auto& [name, field] : found_)
      if (name == key) return &field;
    return nullptr;
  }
  bool is_mapping() const noexcept { return mapping_; }

 private:
  Reader& reader_;
  const YamlNode* node_;
  std::vector<std::string> known_;
  std::vector<std::pair<std::string, Field>> found_;
  std::vector<const YamlNode*> unknown_;
  std::vector<std::pair<const YamlNode*, const YamlNode*>> repeats_;  // (repeat, first)
  bool mapping_ = true;
};

class Reader {
 public:
  Reader(std::string file, std::string_view text, std::filesystem::path directory,
         const ConfigOptions& options, Diagnostics& diags)
      : file_(std::move(file)),
        text_(text),
        directory_(std::move(directory)),
        options_(options),
        diags_(diags) {
    if (options.plugins)
      for (const auto& record : *options.plugins)
        if (record.status != PluginStatus::refused && !record.name.empty()) plugins_.push_back(&record);
  }

  SourcePos pos(const YamlNode* node) const {
    if (node == nullptr) return {file_, 1, 1};
    return {file_, node->line, node->col};
  }
  void error(const YamlNode* node, std::string message) { diags_.error(pos(node), std::move(message)); }
  void error(const SourcePos& at, std::string message) { diags_.error(at, std::move(message)); }
  void warning(const SourcePos& at, std::string message) { diags_.warning(at, std::move(message)); }
  const std::string& file() const noexcept { return file_; }

  void read_config(const YamlNode* root, Config& config);
  std::optional<Pipeline> read_pipeline(const YamlNode* node);

 private:
  friend class Fields;

  // ---- scalars ----

  // The scalar's text with variables substituted; nothing (and an error) if it is not a scalar or a variable
  // is unset. `expected` completes "expected ..., got ...".
  std::optional<std::string> text(const YamlNode* node, std::string_view expected) {
    if (node == nullptr || node->type != Type::scalar) {
      error(node, fmt::format("expected {}, got {}", expected, describe(node)));
      return std::nullopt;
    }
    return substitute(node);
  }

  SourcePos variable_pos(const YamlNode* node, std::string_view reference) const {
    // The reference's own column when it is on the node's line (it may not be: escapes, folded lines). Only
    // as much text as the scalar can span is searched (an escape is at most 10 bytes for one), so many
    // references on one long line cost no more than the text.
    if (node->offset >= text_.size()) return pos(node);
    std::string_view line = text_.substr(node->offset, 10 * node->value.size() + 16);
    line = line.substr(0, line.find('\n'));
    const std::size_t at = line.find(reference);
    if (at != std::string_view::npos) return {file_, node->line, node->col + static_cast<int>(at)};
    return pos(node);
  }

  std::optional<std::string> substitute(const YamlNode* node) {
    const std::string& in = node->value;
    if (in.find('$') == std::string::npos) return in;
    std::string out;
    bool ok = true;
    for (std::size_t i = 0; i < in.size();) {
      if (in[i] != '$' || i + 1 >= in.size() || (in[i + 1] != '$' && in[i + 1] != '{')) {
        out += in[i++];
        continue;
      }
      if (in[i + 1] == '$') {
        out += '$';
        i += 2;
        continue;
      }
      const std::size_t close = in.find('}', i + 2);
      if (close == std::string::npos) {
        error(variable_pos(node, std::string_view(in).substr(i, 2)),
              fmt::format("unterminated variable reference in {}: '${{' without '}}' (write '$$' for a "
                          "literal '$')",
                          quote(in)));
        return std::nullopt;
      }
      const std::string_view reference = std::string_view(in).substr(i, close + 1 - i);
      const std::string_view inner = reference.substr(2, reference.size() - 3);
      const std::size_t dash = inner.find(":-");
      const std::string name(inner.substr(0, dash));
      i = close + 1;
      if (!is_variable_name(name)) {
        error(variable_pos(node, reference),
              fmt::format("invalid variable name {} in '{}': use letters, digits and '_'", quote(name),
                          reference));
        ok = false;
        continue;
      }
      if (const auto var = options_.variables.find(name); var != options_.variables.end()) {
        out += var->second;
      } else if (auto env = options_.environment ? options_.environment(name) : std::nullopt) {
        out += *env;
      } else if (dash != std::string_view::npos) {
        out += inner.substr(dash + 2);
      } else {
        error(
            variable_pos(node, reference),
            fmt::format("variable '{}' is not set: pass --var {}=VALUE, set it in the environment, or give a "
                        "default as ${{{}:-VALUE}}",
                        name, name, name));
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    return out;
  }

  template <class T>
  void read_int(const Fields& f, std::string_view key, Sourced<T>& out, std::int64_t min, std::int64_t max) {
    const Field* field = f.get(key);
    if (field == nullptr) return;
    auto value = text(field->value, "an integer");
    if (!value) return;
    const auto n = parse_int(*value);
    if (!n) return error(field->value, fmt::format("expected an integer, got {}", quote(*value)));
    if (*n < min || *n > max) return error(field->value, range_message(key, *n, min, max));
    out = {static_cast<T>(*n), pos(field->value)};
  }

  static std::string range_message(std::string_view key, std::int64_t n, std::int64_t min, std::int64_t max) {
    if (max == std::numeric_limits<std::int64_t>::max() || max == INT_MAX)
      return fmt::format("{} must be at least {}, got {}", key, min, n);
    return fmt::format("{} must be from {} to {}, got {}", key, min, max, n);
  }

  void read_float(const Fields& f, std::string_view key, Sourced<double>& out, double min, double max) {
    const Field* field = f.get(key);
    if (field == nullptr) return;
    auto value = text(field->value, "a number");
    if (!value) return;
    const auto n = parse_float(*value);
    if (!n) return error(field->value, fmt::format("expected a number, got {}", quote(*value)));
    if (*n < min || *n > max)
      return error(field->value, fmt::format("{} must be from {} to {}, got {}", key, min, max, *value));
    out = {*n, pos(field->value)};
  }

  void read_bool(const Fields& f, std::string_view key, Sourced<bool>& out) {
    const Field* field = f.get(key);
    if (field == nullptr) return;
    auto value = text(field->value, "true or false");
    if (!value) return;
    const auto b = parse_bool(*value);
    if (!b) return error(field->value, fmt::format("expected true or false, got {}", quote(*value)));
    out = {*b, pos(field->value)};
  }

  // `none_ok`: `none` (and zero) mean "no limit" and are kept as zero.
  void read_duration(const Fields& f, std::string_view key, Sourced<ConfigDuration>& out, bool none_ok) {
    const Field* field = f.get(key);
    if (field == nullptr) return;
    auto value = text(field->value, "a duration");
    if (!value) return;
    if (none_ok && *value == "none") {
      out = {ConfigDuration::zero(), pos(field->value)};
      return;
    }
    const auto d = parse_duration(*value);
    if (!d && parse_duration_up_to(*value, std::numeric_limits<std::int64_t>::max() / 4))
      return error(field->value,
                   fmt::format("duration {} is over the maximum of 8760h (a year)", quote(*value)));
    if (!d) {
      const bool bare = parse_int(*value).has_value();
      return error(field->value, fmt::format("expected a duration such as 100ms, 5s, 2m or 1m30s{}, got {}{}",
                                             none_ok ? " (or none)" : "", quote(*value),
                                             bare ? ": a duration needs a unit" : ""));
    }
    out = {*d, pos(field->value)};
  }

  void read_string(const Fields& f, std::string_view key, Sourced<std::string>& out) {
    const Field* field = f.get(key);
    if (field == nullptr) return;
    auto value = text(field->value, "a string");
    if (!value) return;
    if (value->empty()) return error(field->value, fmt::format("{} must not be empty", key));
    out = {std::move(*value), pos(field->value)};
  }

  template <class E>
  void read_enum(const Fields& f, std::string_view key, Sourced<E>& out,
                 std::initializer_list<std::pair<std::string_view, E>> names) {
    const Field* field = f.get(key);
    if (field == nullptr) return;
    std::vector<std::string> words;
    for (const auto& [word, value] : names) words.emplace_back(word);
    const std::string expected =
        words.size() == 2
            ? fmt::format("{} or {}", words[0], words[1])
            : fmt::format("{} or {}", fmt::join(words.begin(), words.end() - 1, ", "), words.back());
    auto value = text(field->value, expected);
    if (!value) return;
    for (const auto& [word, e] : names)
      if (*value == word) {
        out = {e, pos(field->value)};
        return;
      }
    error(field->value,
          fmt::format("expected {}, got {}{}", expected, quote(*value), suggest(*value, words)));
  }

  void require(const Fields& f, const YamlNode* node, std::string_view key, std::string_view where) {
    if (f.is_mapping() && f.get(key) == nullptr)
      error(node, fmt::format("missing required key '{}' in {}", key, where));
  }

  // ---- sections ----

  void read_scheduler(const YamlNode* node, SchedulerConfig& out) {
    Fields f(*this, node, {"workers", "queue_capacity", "order"});
    f.check("scheduler");
    out.pos = pos(node);
    if (const Field* w = f.get("workers")) {
      if (auto value = text(w->value, "a positive integer or auto")) {
        const auto n = parse_int(*value);
        if (*value == "auto") {
          out.workers = {0, pos(w->value)};
        } else if (!n) {
          error(w->value, fmt::format("expected a positive integer or auto, got {}", quote(*value)));
        } else if (*n < 1 || *n > SchedulerConfig::max_workers) {
          error(w->value, range_message("workers", *n, 1, SchedulerConfig::max_workers));
        } else {
          out.workers = {static_cast<unsigned>(*n), pos(w->value)};
        }
      }
    }
    read_int(f, "queue_capacity", out.queue_capacity, 1, 1'000'000'000);
    read_enum(f, "order", out.order, {{"aging", ConfigOrder::aging}, {"strict", ConfigOrder::strict}});
  }

  void read_backpressure(const YamlNode* node, BackpressureConfig& out) {
    Fields f(*this, node, {"max_load", "cooldown", "low_watermark"});
    f.check("backpressure");
    out.enabled = true;
    out.pos = pos(node);
    require(f, node, "max_load", "backpressure");
    read_int(f, "max_load", out.max_load, 1, std::numeric_limits<std::int64_t>::max());
    read_duration(f, "cooldown", out.cooldown, false);
    read_int(f, "low_watermark", out.low_watermark, 1, std::numeric_limits<std::int64_t>::max());
    if (out.low_watermark.pos.known() && out.max_load.pos.known() && *out.low_watermark > *out.max_load)
      error(out.low_watermark.pos, fmt::format("low_watermark ({}) must not exceed max_load ({})",
                                               *out.low_watermark, *out.max_load));
    if (!out.low_watermark.pos.known())
      out.low_watermark.value = std::max<std::int64_t>(1, *out.max_load / 2);
  }

  void read_plugins(const YamlNode* node, PluginsConfig& out) {
    Fields f(*this, node, {"dirs", "allowlist", "rescan_interval", "probe"});
    f.check("plugins");
    out.pos = pos(node);
    if (const Field* dirs = f.get("dirs")) {
      for (const YamlNode* item : list(dirs->value, "a list of directories"))
        if (auto dir = text(item, "a directory")) {
          if (dir->empty()) {
            error(item, "a plugin directory must not be empty");
          } else {
            out.dirs.push_back({std::move(*dir), pos(item)});
          }
        }
    }
    if (f.get("allowlist")) {
      Sourced<std::string> allowlist;
      read_string(f, "allowlist", allowlist);
      if (allowlist.pos.known()) out.allowlist = std::move(allowlist);
    }
    read_duration(f, "rescan_interval", out.rescan_interval, true);
    read_bool(f, "probe", out.probe);
  }

  // The items of a list; a null node is an empty list; anything else is reported.
  std::vector<const YamlNode*> list(const YamlNode* node, std::string_view expected) {
    if (node == nullptr || node->type == Type::null) return {};
    if (node->type != Type::sequence) {
      error(node, fmt::format("expected {}, got {}", expected, describe(node)));
      return {};
    }
    return node->items;
  }

  void read_retry(const Field* field, RetryConfig& out) {
    if (field == nullptr) return;
    Fields f(*this, field->value, {"limit", "backoff"});
    f.check("retry");
    read_int(f, "limit", out.limit, 0, 1'000'000);
    if (const Field* backoff = f.get("backoff")) {
      Fields b(*this, backoff->value, {"initial", "factor", "max", "jitter"});
      b.check("backoff");
      read_duration(b, "initial", out.backoff.initial, false);
      read_float(b, "factor", out.backoff.factor, 1.0, 100.0);
      read_duration(b, "max", out.backoff.max, false);
      read_bool(b, "jitter", out.backoff.jitter);
      if (*out.backoff.max < *out.backoff.initial)
        warning(out.backoff.max.pos.known() ? out.backoff.max.pos : out.backoff.initial.pos,
                fmt::format("backoff max ({}) is below initial ({}): every retry waits at most {}",
                            format_duration(*out.backoff.max), format_duration(*out.backoff.initial),
                            format_duration(*out.backoff.max)));
    }
  }

  std::optional<PluginRef> read_uses(const Field* field) {
    if (field == nullptr) return std::nullopt;
    auto value = text(field->value, "plugin.kind");
    if (!value) return std::nullopt;
    const std::size_t dot = value->rfind('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == value->size()) {
      error(field->value, fmt::format("expected plugin.kind (such as fs.walk), got {}", quote(*value)));
      return std::nullopt;
    }
    PluginRef ref{value->substr(0, dot), value->substr(dot + 1), pos(field->value)};
    // A plugin name may hold dots: prefer the split that names a plugin we know.
    for (std::size_t at = value->find('.'); at != std::string::npos && at < dot;
         at = value->find('.', at + 1))
      if (find_plugin(value->substr(0, at)) != nullptr) {
        ref.plugin = value->substr(0, at);
        ref.kind = value->substr(at + 1);
        break;
      }
    return ref;
  }

  void read_params(const Field* field, Params& out) {
    if (field == nullptr || field->value->type == Type::null) return;
    if (field->value->type != Type::mapping)
      return error(field->value, fmt::format("expected a mapping of params, got {}", describe(field->value)));
    for (const auto& [key, value] : field->value->entries) {
      if (key->type != Type::scalar) {
        error(key, fmt::format("expected a param name, got {}", describe(key)));
        continue;
      }
      if (out.contains(key->value)) {
        error(key, fmt::format("duplicate param '{}' (first at {}:{})", key->value,
                               out[key->value].key_pos.line, out[key->value].key_pos.col));
        continue;
      }
      auto v = text(value, fmt::format("a value for param '{}' (params are text)", key->value));
      if (!v) {
        // Reported already; kept as written so it is not also reported missing or mistyped.
        unchecked_.insert(pos(value));
        out[key->value] = ParamValue{value->value, pos(value), pos(key), false};
        continue;
      }
      out[key->value] = ParamValue{std::move(*v), pos(value), pos(key), false};
    }
  }

  Stage read_stage(const YamlNode* node, std::string_view role, std::size_t index) {
    Stage stage;
    stage.pos = pos(node);
    Fields f(*this, node,
             {"name", "uses", "params", "concurrency", "max_in_flight", "priority", "retry", "timeout",
              "on_error", "dead_letter"});
    read_string(f, "name", stage.name);
    const std::string where = stage.name.pos.known() ? fmt::format("{} '{}'", role, *stage.name)
                              : index == 0           ? std::string(role)
                                                     : fmt::format("{} {}", role, index);
    f.check(where);
    if (!f.is_mapping()) return stage;
    require(f, node, "name", where);
    require(f, node, "uses", where);
    if (auto uses = read_uses(f.get("uses"))) stage.uses = std::move(*uses);
    read_params(f.get("params"), stage.params);
    if (const Field* c = f.get("concurrency")) {
      if (auto value = text(c->value, "serial, unlimited or a positive integer")) {
        const auto n = parse_int(*value);
        if (*value == "serial") {
          stage.concurrency = {serial_concurrency, pos(c->value)};
        } else if (*value == "unlimited") {
          stage.concurrency = {unlimited_concurrency, pos(c->value)};
        } else if (!n) {
          error(c->value, fmt::format("expected serial, unlimited or a positive integer, got {}{}",
                                      quote(*value), suggest(*value, {"serial", "unlimited"})));
        } else if (*n < 1 || *n > 4096) {
          error(c->value, range_message("concurrency", *n, 1, 4096));
        } else {
          stage.concurrency = {static_cast<std::size_t>(*n), pos(c->value)};
        }
      }
      if (role == "source")
        warning(pos(c->key), "concurrency has no effect on a source: it is always read one item at a time");
    }
    read_int(f, "max_in_flight", stage.max_in_flight, 1, 1'000'000);
    read_int(f, "priority", stage.priority, 0, INT_MAX);
    read_retry(f.get("retry"), stage.retry);
    read_duration(f, "timeout", stage.timeout, true);
    read_enum(f, "on_error", stage.on_error,
              {{"fail", OnError::fail}, {"skip", OnError::skip}, {"dead_letter", OnError::dead_letter}});
    read_string(f, "dead_letter", stage.dead_letter);
    if (*stage.concurrency > *stage.max_in_flight && stage.concurrency.pos.known())
      warning(stage.concurrency.pos,
              fmt::format("concurrency {} is above max_in_flight {}: at most {} items run at once in {}",
                          *stage.concurrency, *stage.max_in_flight, *stage.max_in_flight, where));
    return stage;
  }

  void check_stage_names(Pipeline& p) {
    std::map<std::string, SourcePos> seen;
    auto visit = [&](const Stage& s) {
      if (!s.name.pos.known()) return;
      const auto [it, fresh] = seen.emplace(*s.name, s.name.pos);
      if (!fresh)
        error(s.name.pos, fmt::format("duplicate stage name '{}' (first at {}:{})", *s.name, it->second.line,
                                      it->second.col));
    };
    visit(p.source);
    for (const auto& s : p.stages) visit(s);
    for (const auto& s : p.sinks) visit(s);

    std::vector<std::string> sink_names;
    for (const auto& s : p.sinks)
      if (s.name.pos.known()) sink_names.push_back(*s.name);
    auto check_dead_letter = [&](const Stage& s) {
      if (*s.on_error == OnError::dead_letter && !s.dead_letter.pos.known()) {
        error(s.on_error.pos,
              "on_error: dead_letter needs 'dead_letter: SINK', naming the sink that receives failed items");
      } else if (s.dead_letter.pos.known() && *s.on_error != OnError::dead_letter) {
        warning(s.dead_letter.pos, fmt::format("dead_letter is ignored: on_error is {}, not dead_letter",
                                               to_string(*s.on_error)));
      } else if (s.dead_letter.pos.known() &&
                 std::find(sink_names.begin(), sink_names.end(), *s.dead_letter) == sink_names.end()) {
        error(s.dead_letter.pos,
              fmt::format("dead_letter names '{}', which is not a sink of this pipeline{}; sinks: {}",
                          *s.dead_letter, suggest(*s.dead_letter, sink_names),
                          sink_names.empty() ? "none" : join(sink_names)));
      } else if (s.dead_letter.pos.known() && s.name.pos.known() && *s.dead_letter == *s.name) {
        error(s.dead_letter.pos, fmt::format("sink '{}' cannot be its own dead letter", *s.name));
      }
    };
    check_dead_letter(p.source);
    for (const auto& s : p.stages) check_dead_letter(s);
    for (const auto& s : p.sinks) check_dead_letter(s);

    // Sinks whose dead letters lead back to themselves: an item that fails in each would go round forever.
    // Reported once per cycle, at its first sink in the file.
    const auto dead_letter_of = [&](std::size_t i) -> std::optional<std::size_t> {
      const auto& sink = p.sinks[i];
      if (!sink.dead_letter.pos.known() || !sink.on_error.pos.known() ||
          *sink.on_error != OnError::dead_letter)
        return std::nullopt;
      for (std::size_t j = 0; j < p.sinks.size(); ++j)
        if (j != i && p.sinks[j].name.pos.known() && *p.sinks[j].name == *sink.dead_letter) return j;
      return std::nullopt;
    };
    for (std::size_t first = 0; first < p.sinks.size(); ++first) {
      std::vector<std::size_t> path{first};
      for (auto next = dead_letter_of(first); next; next = dead_letter_of(*next)) {
        if (*next == first) {
          if (*std::min_element(path.begin(), path.end()) == first) {
            std::vector<std::string> names;
            for (const auto i : path) names.push_back(*p.sinks[i].name);
            names.push_back(*p.sinks[first].name);
            error(p.sinks[first].dead_letter.pos,
                  fmt::format("dead letters go round in a cycle: {}; an item that fails in each would never "
                              "leave it. End the chain at a sink whose on_error is skip or fail",
                              fmt::join(names, " -> ")));
          }
          break;
        }
        if (std::find(path.begin(), path.end(), *next) != path.end()) break;  // a cycle that does not
        path.push_back(*next);                                                // include `first`
      }
    }

    // A sink named as a dead letter receives only dead letters: if every sink is one, the items that reach
    // the end of the pipeline have nowhere to go, and a run would drop them all without a word.
    std::vector<std::string> targets;
    auto note_target = [&](const Stage& s) {
      if (s.on_error.pos.known() && *s.on_error == OnError::dead_letter && s.dead_letter.pos.known())
        targets.push_back(*s.dead_letter);
    };
    note_target(p.source);
    for (const auto& s : p.stages) note_target(s);
    for (const auto& s : p.sinks) note_target(s);
    const bool all_dead_letters =
        !p.sinks.empty() && std::all_of(p.sinks.begin(), p.sinks.end(), [&](const Stage& s) {
          return s.name.pos.known() && std::find(targets.begin(), targets.end(), *s.name) != targets.end();
        });
    if (all_dead_letters) {
      error(p.sinks.front().name.pos,
            fmt::format(
                "every sink receives dead letters ({}), so the items that reach the end of the pipeline "
                "would go nowhere; add a sink for them",
                join(sink_names)));
    }
  }

  // ---- plugins ----

  const PluginRecord* find_plugin(std::string_view name) const {
    for (const PluginRecord* record : plugins_)
      if (record->name == name) return record;
    return nullptr;
  }

  std::vector<std::string> kinds_of_type(std::string_view type) const {
    std::vector<std::string> out;
    for (const PluginRecord* record : plugins_)
      for (const auto& kind : record->kinds)
        if (kind.type == type) out.push_back(record->name + "." + kind.name);
    return out;
  }

  // Checks `uses` and its params against the plugins' declarations, filling in defaults; `type` is the kind
  // type the place needs ("source", "transform", "sink", "task").
  void check_kind(const PluginRef& uses, std::string_view type, Params& params, const SourcePos& owner) {
    if (!options_.plugins || uses.plugin.empty()) return;
    const std::vector<std::string> available = kinds_of_type(type);
    std::string listing = fmt::format("available {} kinds: {}", type, join(available));
    if (plugins_.empty()) {
      listing =
          "no plugins were found: name a plugin directory in plugins.dirs, with --plugins DIR, or in "
          "TASKHIVE_PLUGIN_PATH";
    } else if (available.empty()) {
      listing = fmt::format("no {} kinds are available", type);
    }
    const PluginRecord* record = find_plugin(uses.plugin);
    const PluginKind* kind = nullptr;
    if (record != nullptr)
      for (const auto& k : record->kinds)
        if (k.name == uses.kind) kind = &k;
    if (kind == nullptr) {
      std::vector<std::string> all = available;
      for (const PluginRecord* r : plugins_)
        for (const auto& k : r->kinds) all.push_back(r->name + "." + k.name);
      return error(uses.pos, fmt::format("unknown plugin kind '{}'{}; {}", uses.text(),
                                         suggest(uses.text(), all), listing));
    }
    if (kind->type != type)
      return error(uses.pos, fmt::format("'{}' is a {} kind, but a {} kind is needed here; {}", uses.text(),
                                         kind->type, type, listing));
    std::vector<std::string> declared;
    for (const auto& p : kind->params) declared.push_back(p.name);
    for (auto& [name, value] : params) {
      const std::string& param_name = name;  // clang 14 cannot capture a structured binding
      const auto decl = std::find_if(kind->params.begin(), kind->params.end(),
                                     [&](const PluginParam& p) { return p.name == param_name; });
      if (decl == kind->params.end()) {
        error(value.key_pos,
              fmt::format("unknown param '{}' for {}{}; {}", name, uses.text(), suggest(name, declared),
                          declared.empty() ? "it takes no params" : "it takes: " + join(declared)));
        continue;
      }
      if (unchecked_.contains(value.pos)) continue;
      const bool good = decl->type == "int"     ? parse_int(value.value).has_value()
                        : decl->type == "float" ? parse_float(value.value).has_value()
                        : decl->type == "bool"  ? parse_bool(value.value).has_value()
                                                : true;
      if (!good) {
        const std::string_view article = decl->type == "int"     ? "an integer"
                                         : decl->type == "float" ? "a number"
                                                                 : "true or false";
        error(value.pos, fmt::format("param '{}' of {} expects {}, got {}", name, uses.text(), article,
                                     quote(value.value)));
      }
    }
    for (const auto& decl : kind->params) {
      if (params.contains(decl.name)) continue;
      if (decl.required) {
        error(owner, fmt::format("missing required param '{}' for {}{}", decl.name, uses.text(),
                                 decl.help.empty() ? "" : " (" + decl.help + ")"));
      } else if (decl.default_value) {
        params[decl.name] = ParamValue{*decl.default_value, {}, {}, true};
      }
    }
  }

  void check_pipeline_kinds(Pipeline& p) {
    check_kind(p.source.uses, "source", p.source.params, p.source.pos);
    for (auto& s : p.stages) check_kind(s.uses, "transform", s.params, s.pos);
    for (auto& s : p.sinks) check_kind(s.uses, "sink", s.params, s.pos);
  }

  // ---- workflow ----

  Workflow read_workflow(const YamlNode* node) {
    Workflow wf;
    wf.pos = pos(node);
    Fields f(*this, node, {"tasks"});
    f.check("workflow");
    if (!f.is_mapping()) return wf;
    const Field* tasks = f.get("tasks");
    if (tasks == nullptr) {
      error(node, "missing required key 'tasks' in workflow");
      return wf;
    }
    std::size_t index = 0;
    for (const YamlNode* item : list(tasks->value, "a list of tasks"))
      wf.tasks.push_back(read_task(item, ++index));
    if (tasks->value->type == Type::null || (tasks->value->type == Type::sequence && wf.tasks.empty()))
      error(tasks->value, "a workflow needs at least one task");
    if (!wf.tasks.empty()) check_workflow(wf);
    return wf;
  }

  WorkflowTask read_task(const YamlNode* node, std::size_t index) {
    WorkflowTask task;
    task.pos = pos(node);
    Fields f(*this, node,
             {"name", "uses", "params", "pipeline", "depends_on", "priority", "retry", "timeout", "if"});
    read_string(f, "name", task.name);
    const std::string where =
        task.name.pos.known() ? fmt::format("task '{}'", *task.name) : fmt::format("task {}", index);
    f.check(where);
    if (!f.is_mapping()) return task;
    require(f, node, "name", where);
    const Field* uses = f.get("uses");
    const Field* pipeline = f.get("pipeline");
    if (uses != nullptr && pipeline != nullptr) {
      const Field* later = uses->key->offset > pipeline->key->offset ? uses : pipeline;
      error(later->key, fmt::format("{} has both 'uses' and 'pipeline'; give one of them", where));
    } else if (uses == nullptr && pipeline == nullptr) {
      error(node, fmt::format("{} needs 'uses' (a plugin task kind) or 'pipeline'", where));
    }
    if (uses != nullptr) {
      task.uses = read_uses(uses);
      read_params(f.get("params"), task.params);
      if (task.uses) check_kind(*task.uses, "task", task.params, task.pos);
    } else if (const Field* params = f.get("params"); params != nullptr && pipeline != nullptr) {
      error(params->key, "params go with 'uses'; the stages of a pipeline take their own params");
    }
    if (pipeline != nullptr && uses == nullptr) read_task_pipeline(pipeline->value, task);
    if (const Field* deps = f.get("depends_on")) {
      std::vector<const YamlNode*> items;
      if (deps->value->type == Type::scalar) {
        items.push_back(deps->value);
      } else {
        items = list(deps->value, "a task name or a list of them");
      }
      for (const YamlNode* item : items)
        if (auto name = text(item, "a task name")) task.depends_on.push_back({std::move(*name), pos(item)});
    }
    read_int(f, "priority", task.priority, INT_MIN, INT_MAX);
    read_retry(f.get("retry"), task.retry);
    read_duration(f, "timeout", task.timeout, true);
    read_enum(f, "if", task.run_if,
              {{"success", RunIf::success}, {"failure", RunIf::failure}, {"always", RunIf::always}});
    return task;
  }

  void read_task_pipeline(const YamlNode* node, WorkflowTask& task);

  void check_workflow(Workflow& wf) {
    std::map<std::string, std::size_t> index;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < wf.tasks.size(); ++i) {
      const auto& t = wf.tasks[i];
      if (!t.name.pos.known()) continue;
      const auto [it, fresh] = index.emplace(*t.name, i);
      if (!fresh) {
        const SourcePos& first = wf.tasks[it->second].name.pos;
        error(t.name.pos,
              fmt::format("duplicate task name '{}' (first at {}:{})", *t.name, first.line, first.col));
      } else {
        names.push_back(*t.name);
      }
    }
    // Edges to known tasks only; unknown ones are reported here.
    std::vector<std::vector<std::pair<std::size_t, SourcePos>>> edges(wf.tasks.size());
    bool any_root = false;
    for (std::size_t i = 0; i < wf.tasks.size(); ++i) {
      auto& t = wf.tasks[i];
      std::set<std::string> seen;
      for (const auto& dep : t.depends_on) {
        if (!seen.insert(*dep).second) {
          warning(dep.pos, fmt::format("'{}' is listed twice in depends_on", *dep));
          continue;
        }
        const auto it = index.find(*dep);
        if (it == index.end()) {
          error(dep.pos, fmt::format("depends_on names unknown task '{}'{}", *dep, suggest(*dep, names)));
          continue;
        }
        edges[i].push_back({it->second, dep.pos});
      }
      if (t.depends_on.empty()) {
        any_root = true;
        if (*t.run_if == RunIf::failure && t.name.pos.known())
          warning(t.run_if.pos,
                  fmt::format("task '{}' has if: failure but no dependencies, so it never runs", *t.name));
      }
    }
    if (!any_root && !wf.tasks.empty())
      error(wf.pos, "the workflow has no root task: every task depends on another, so none can start");
    find_cycles(wf, edges);
  }

  // Depth-first search; each back edge closes a cycle, printed in the order the tasks would run ("a -> b":
  // b depends on a): "alpha -> beta -> gamma -> alpha".
  // Iterative, so a long chain of dependencies cannot overflow the stack.
  void find_cycles(const Workflow& wf,
                   const std::vector<std::vector<std::pair<std::size_t, SourcePos>>>& edges) {
    enum class Mark { white, grey, black };
    std::vector<Mark> mark(wf.tasks.size(), Mark::white);
    for (std::size_t start = 0; start < wf.tasks.size(); ++start) {
      if (mark[start] != Mark::white) continue;
      std::vector<std::pair<std::size_t, std::size_t>> stack{{start, 0}};  // (task, next edge)
      mark[start] = Mark::grey;
      while (!stack.empty()) {
        auto& [task, next] = stack.back();
        if (next == edges[task].size()) {
          mark[task] = Mark::black;
          stack.pop_back();
          continue;
        }
        const auto& [to, at] = edges[task][next++];
        if (mark[to] == Mark::white) {
          mark[to] = Mark::grey;
          stack.push_back({to, 0});
        } else if (mark[to] == Mark::grey) {
          // The stack runs from dependents to their dependencies; print it the way the tasks would run.
          std::vector<std::string> path{*wf.tasks[to].name};
          for (auto frame = stack.rbegin(); frame != stack.rend() && frame->first != to; ++frame)
            path.push_back(*wf.tasks[frame->first].name);
          path.push_back(*wf.tasks[to].name);
          error(at, fmt::format("dependency cycle: {}", fmt::join(path, " -> ")));
        }
      }
    }
  }

  std::string file_;
  std::string_view text_;
  std::filesystem::path directory_;
  const ConfigOptions& options_;
  Diagnostics& diags_;
  std::vector<const PluginRecord*> plugins_;
  std::set<SourcePos, PosLess> unchecked_;  // params whose value could not be read
};

Fields::Fields(Reader& reader, const YamlNode* node, std::initializer_list<std::string_view> known,
               bool extensions)
    : reader_(reader), node_(node), known_(known.begin(), known.end()) {
  if (node == nullptr || node->type == Type::null) return;  // an empty section: all defaults
  if (node->type != Type::mapping) {
    mapping_ = false;
    return;
  }
  for (const auto& [key, value] : node->entries) {
    if (key->type != Type::scalar) {
      unknown_.push_back(key);
      continue;
    }
    const std::string& name = key->value;  // clang 14 cannot capture a structured binding
    const auto first =
        std::find_if(found_.begin(), found_.end(), [&](const auto& f) { return f.first == name; });
    if (extensions && key->value.starts_with("x-")) continue;
    if (first != found_.end()) {
      repeats_.push_back({key, first->second.key});
    } else if (std::find(known_.begin(), known_.end(), key->value) == known_.end()) {
      unknown_.push_back(key);
    } else {
      found_.push_back({key->value, Field{key, value}});
    }
  }
}

void Fields::check(std::string_view where) {
  if (!mapping_) {
    reader_.error(node_, fmt::format("expected a mapping for {}, got {}", where, describe(node_)));
    return;
  }
  for (const YamlNode* key : unknown_) {
    if (key->type != Type::scalar) {
      reader_.error(key, fmt::format("expected a key in {}, got {}", where, describe(key)));
      continue;
    }
    if (key->value == "<<") {
      reader_.error(key, "merge keys (<<) are not supported; write the keys out, or alias a whole value");
      continue;
    }
    const std::string hint = suggest(key->value, known_);
    reader_.error(key, hint.empty() ? fmt::format("unknown key {} in {}; expected one of: {}",
                                                  quote(key->value), where, join(known_))
                                    : fmt::format("unknown key {} in {}{}", quote(key->value), where, hint));
  }
  for (const auto& [repeat, first] : repeats_)
    reader_.error(repeat, fmt::format("duplicate key {} in {} (first at {}:{})", quote(repeat->value), where,
                                      first->line, first->col));
}

std::optional<Pipeline> Reader::read_pipeline(const YamlNode* node) {
  Pipeline p;
  p.pos = pos(node);
  Fields f(*this, node, {"source", "stages", "sink", "ordered"});
  f.check("pipeline");
  if (!f.is_mapping()) return p;
  if (node == nullptr || node->type == Type::null) {
    error(node, "the pipeline is empty: it needs a source and a sink");
    return p;
  }
  require(f, node, "source", "pipeline");
  require(f, node, "sink", "pipeline");
  if (const Field* source = f.get("source")) p.source = read_stage(source->value, "source", 0);
  if (const Field* stages = f.get("stages")) {
    std::size_t index = 0;
    for (const YamlNode* item : list(stages->value, "a list of stages"))
      p.stages.push_back(read_stage(item, "stage", ++index));
  }
  if (const Field* sink = f.get("sink")) {
    if (sink->value->type == Type::sequence) {
      std::size_t index = 0;
      for (const YamlNode* item : sink->value->items) p.sinks.push_back(read_stage(item, "sink", ++index));
      if (sink->value->items.empty())
        error(sink->value, "sink is an empty list: a pipeline needs at least one sink");
    } else {
      p.sinks.push_back(read_stage(sink->value, "sink", 0));
    }
  }
  read_bool(f, "ordered", p.ordered);
  check_stage_names(p);
  check_pipeline_kinds(p);
  return p;
}

std::optional<std::string> read_file(const std::filesystem::path& path, const std::string& name,
                                     const SourcePos& referrer, const ConfigLimits& limits,
                                     Diagnostics& diags);

void Reader::read_task_pipeline(const YamlNode* node, WorkflowTask& task) {
  if (node->type != Type::scalar) {
    task.pipeline = read_pipeline(node);
    return;
  }
  auto written = text(node, "a pipeline or a file name");
  if (!written) return;
  task.pipeline_file = {*written, pos(node)};
  const std::filesystem::path relative(*written);
  const std::filesystem::path path = relative.is_absolute() ? relative : directory_ / relative;
  const std::string name =
      relative.is_absolute()
          ? relative.string()
          : (std::filesystem::path(file_).parent_path() / relative).lexically_normal().string();
  const auto contents = read_file(path, name, pos(node), options_.limits, diags_);
  if (!contents) return;
  const std::size_t errors_before = diags_.error_count();
  const YamlDocument doc = parse_yaml(*contents, name, options_.limits, diags_);
  Reader sub(name, *contents, path.parent_path(), options_, diags_);
  const YamlNode* root = doc.root;
  if (diags_.error_count() > errors_before) return;
  if (root == nullptr || root->type == Type::null) {
    sub.error(root, "the pipeline file is empty: it needs a 'pipeline' mapping");
    return;
  }
  Fields f(sub, root, {"pipeline", "scheduler", "backpressure", "plugins", "workflow"});
  f.check("a pipeline file");
  if (!f.is_mapping()) return;
  for (std::string_view ignored : {"scheduler", "backpressure", "plugins"})
    if (const Field* field = f.get(ignored))
      sub.warning(sub.pos(field->key),
                  fmt::format("'{}' is ignored in a pipeline file included by a workflow: "
                              "the workflow's config applies",
                              ignored));
  if (const Field* wf = f.get("workflow"))
    sub.error(wf->key, "a file included as a task's pipeline holds a pipeline, not a workflow");
  if (const Field* p = f.get("pipeline")) {
    task.pipeline = sub.read_pipeline(p->value);
  } else {
    sub.error(root, "missing required key 'pipeline' in a pipeline file");
  }
}

void Reader::read_config(const YamlNode* root, Config& config) {
  if (root == nullptr || root->type == Type::null) {
    error(SourcePos{file_, 1, 1}, "the config is empty: it needs a 'pipeline' or a 'workflow'");
    return;
  }
  Fields f(*this, root, {"scheduler", "backpressure", "plugins", "pipeline", "workflow"}, true);
  f.check("the config");
  if (!f.is_mapping()) return;
  if (const Field* s = f.get("scheduler")) read_scheduler(s->value, config.scheduler);
  if (const Field* b = f.get("backpressure")) read_backpressure(b->value, config.backpressure);
  if (const Field* p = f.get("plugins")) read_plugins(p->value, config.plugins);
  const Field* pipeline = f.get("pipeline");
  const Field* workflow = f.get("workflow");
  if (pipeline != nullptr && workflow != nullptr) {
    const Field* later = pipeline->key->offset > workflow->key->offset ? pipeline : workflow;
    error(later->key, "both 'pipeline' and 'workflow' are given; a config has exactly one of them");
  } else if (pipeline == nullptr && workflow == nullptr) {
    error(root, "neither 'pipeline' nor 'workflow' is given; a config needs exactly one of them");
  }
  if (pipeline != nullptr) config.pipeline = read_pipeline(pipeline->value);
  if (workflow != nullptr) config.workflow = read_workflow(workflow->value);
  if (const Field* b = f.get("backpressure"); b != nullptr && pipeline != nullptr && workflow == nullptr) {
    // Admission control sheds tasks submitted to the scheduler; a pipeline's items are not tasks.
    warning(pos(b->key),
            "backpressure has no effect on a pipeline: it refuses workflow tasks; a pipeline's "
            "items are bounded, without loss, by its stages' max_in_flight and concurrency");
  }
}

std::optional<std::string> read_file(const std::filesystem::path& path, const std::string& name,
                                     const SourcePos& referrer, const ConfigLimits& limits,
                                     Diagnostics& diags) {
  // A file named by a config is reported where it is named; the config itself has no such place.
  const SourcePos at = referrer.known() ? referrer : SourcePos{name, 0, 0};
  const std::string prefix =
      referrer.known() ? fmt::format("cannot read pipeline file '{}': ", name) : "cannot read the config: ";
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    diags.error(at, prefix + (ec ? ec.message() : "no such file"));
    return std::nullopt;
  }
  if (!std::filesystem::is_regular_file(status)) {
    diags.error(at, prefix + "not a regular file");
    return std::nullopt;
  }
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > limits.max_bytes) {
    diags.error({name, 1, 1}, fmt::format("the file is {} bytes, over the limit of {} (limits.max_bytes)",
                                          size, limits.max_bytes));
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diags.error(at, prefix + std::strerror(errno));
    return std::nullopt;
  }
  // Read at most one byte past the limit, in case the file grew since it was measured.
  std::string contents(limits.max_bytes + 1, '\0');
  in.read(contents.data(), static_cast<std::streamsize>(contents.size()));
  contents.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad()) {
    diags.error(at, prefix + "read error");
    return std::nullopt;
  }
  return contents;
}

ConfigResult load(std::string_view text, std::string name, const ConfigOptions& options,
                  const std::filesystem::path& directory) {
  ConfigResult result;
  Diagnostics diags;
  std::error_code ec;
  result.config.file = name;
  std::filesystem::path absolute =
      directory.empty() ? std::filesystem::current_path(ec) : std::filesystem::absolute(directory, ec);
  absolute = absolute.lexically_normal();
  if (!absolute.has_filename() && absolute.has_parent_path() && absolute != absolute.root_path())
    absolute = absolute.parent_path();  // "/a/b/" -> "/a/b"
  result.config.directory = absolute;
  const YamlDocument doc = parse_yaml(text, name, options.limits, diags);
  if (!diags.has_errors()) {
    Reader reader(name, text, result.config.directory, options, diags);
    reader.read_config(doc.root, result.config);
  }
  result.diagnostics = diags.sorted();
  return result;
}

}  // namespace
}  // namespace detail

ConfigResult load_config_string(std::string_view text, std::string name, const ConfigOptions& options,
                                const std::filesystem::path& directory) {
  return detail::load(text, std::move(name), options, directory);
}

ConfigResult load_config(const std::filesystem::path& file, const ConfigOptions& options) {
  Diagnostics diags;
  const auto text = detail::read_file(file, file.string(), {}, options.limits, diags);
  if (!text) {
    ConfigResult result;
    result.config.file = file.string();
    result.diagnostics = diags.sorted();
    return result;
  }
  return detail::load(*text, file.string(), options, file.parent_path());
}

}  // namespace taskhive
