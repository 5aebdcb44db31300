// Config -> normalised YAML. Written by hand rather than with YAML::Emitter so the output is fixed (key
// order, quoting, layout) and reloading it gives back the same text: the round-trip tests rely on that.

#include <array>
#include <charconv>

#include <fmt/format.h>

#include "taskhive/config.hpp"

namespace taskhive {
namespace {

bool plain_safe(std::string_view s) {
  if (s.empty() || s == "null" || s == "Null" || s == "NULL" || s == "~") return false;
  const auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(s[0]) && s[0] != '/' && s[0] != '.') return false;
  for (char c : s)
    if (!word(c) && c != '.' && c != '/' && c != '-' && c != '+' && c != '@') return false;
  return true;
}

// A string as a YAML scalar that reads back as the same text: plain when nothing in it means anything to
// YAML, else double-quoted; in a value (not a key: keys are never substituted) `$` is doubled so variable
// substitution leaves it alone.
std::string scalar(std::string_view raw, bool is_key = false) {
  std::string s;
  for (char c : raw) {
    s += c;
    if (c == '$' && !is_key) s += '$';
  }
  if (plain_safe(s)) return s;
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string number(double value) {
  std::array<char, 64> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return ec == std::errc() ? std::string(buffer.data(), end) : fmt::format("{}", value);
}

std::string optional_duration(ConfigDuration d) {
  return d.count() == 0 ? "none" : format_duration(d);
}

class Printer {
 public:
  void line(int indent, std::string_view text) {
    out_.append(static_cast<std::size_t>(indent), ' ');
    out_ += text;
    out_ += '\n';
  }
  void key(int indent, std::string_view k, std::string_view value) {
    line(indent, fmt::format("{}: {}", k, value));
  }

  // Writes a mapping at indent + 2 by `write`, then turns its first line's indentation into "- ".
  template <class Write>
  void item(int indent, Write write) {
    const std::size_t start = out_.size();
    write(indent + 2);
    if (out_.size() > start + static_cast<std::size_t>(indent) + 1) out_.replace(start + indent, 2, "- ");
  }

  void retry(int indent, const RetryConfig& r) {
    line(indent, "retry:");
    key(indent + 2, "limit", std::to_string(*r.limit));
    line(indent + 2, "backoff:");
    key(indent + 4, "initial", format_duration(*r.backoff.initial));
    key(indent + 4, "factor", number(*r.backoff.factor));
    key(indent + 4, "max", format_duration(*r.backoff.max));
    key(indent + 4, "jitter", *r.backoff.jitter ? "true" : "false");
  }

  void params(int indent, const Params& params) {
    if (params.empty()) return key(indent, "params", "{}");
    line(indent, "params:");
    for (const auto& [name, value] : params) key(indent + 2, scalar(name, true), scalar(value.value));
  }

  // A source is read one item at a time: it has no concurrency to print (and a reload would warn about it).
  void stage(int indent, const Stage& s, bool source = false) {
    key(indent, "name", scalar(*s.name));
    key(indent, "uses", scalar(s.uses.text()));
    params(indent, s.params);
    const std::size_t c = *s.concurrency;
    if (!source)
      key(indent, "concurrency",
          c == unlimited_concurrency ? "unlimited"
          : c == serial_concurrency  ? "serial"
                                     : std::to_string(c));
    key(indent, "max_in_flight", std::to_string(*s.max_in_flight));
    key(indent, "priority", std::to_string(*s.priority));
    retry(indent, s.retry);
    key(indent, "timeout", optional_duration(*s.timeout));
    key(indent, "on_error", to_string(*s.on_error));
    if (s.dead_letter.pos.known() || !s.dead_letter->empty())
      key(indent, "dead_letter", scalar(*s.dead_letter));
  }

  void pipeline(int indent, const Pipeline& p) {
    line(indent, "source:");
    stage(indent + 2, p.source, true);
    if (p.stages.empty()) {
      key(indent, "stages", "[]");
    } else {
      line(indent, "stages:");
      for (const auto& s : p.stages) item(indent + 2, [&](int i) { stage(i, s); });
    }
    line(indent, "sink:");
    for (const auto& s : p.sinks) item(indent + 2, [&](int i) { stage(i, s); });
    key(indent, "ordered", *p.ordered ? "true" : "false");
  }

  void task(int indent, const WorkflowTask& t) {
    key(indent, "name", scalar(*t.name));
    if (t.uses) {
      key(indent, "uses", scalar(t.uses->text()));
      params(indent, t.params);
    } else if (!t.pipeline_file->empty()) {
      // The file stays the source of truth (and `validate --print` of it shows its defaults).
      key(indent, "pipeline", scalar(*t.pipeline_file));
    } else if (t.pipeline) {
      line(indent, "pipeline:");
      pipeline(indent + 2, *t.pipeline);
    }
    if (t.depends_on.empty()) {
      key(indent, "depends_on", "[]");
    } else {
      line(indent, "depends_on:");
      for (const auto& d : t.depends_on) line(indent + 2, "- " + scalar(*d));
    }
    key(indent, "priority", std::to_string(*t.priority));
    retry(indent, t.retry);
    key(indent, "timeout", optional_duration(*t.timeout));
    key(indent, "if", to_string(*t.run_if));
  }

  void config(const Config& c) {
    line(0, "scheduler:");
    key(2, "workers", *c.scheduler.workers == 0 ? "auto" : std::to_string(*c.scheduler.workers));
    key(2, "queue_capacity", std::to_string(*c.scheduler.queue_capacity));
    key(2, "order", to_string(*c.scheduler.order));
    if (c.backpressure.enabled) {
      line(0, "backpressure:");
      key(2, "max_load", std::to_string(*c.backpressure.max_load));
      key(2, "cooldown", format_duration(*c.backpressure.cooldown));
      key(2, "low_watermark", std::to_string(*c.backpressure.low_watermark));
    }
    line(0, "plugins:");
    if (c.plugins.dirs.empty()) {
      key(2, "dirs", "[]");
    } else {
      line(2, "dirs:");
      for (const auto& d : c.plugins.dirs) line(4, "- " + scalar(*d));
    }
    if (c.plugins.allowlist) key(2, "allowlist", scalar(**c.plugins.allowlist));
    key(2, "rescan_interval", optional_duration(*c.plugins.rescan_interval));
    key(2, "probe", *c.plugins.probe ? "true" : "false");
    if (c.pipeline) {
      line(0, "pipeline:");
      pipeline(2, *c.pipeline);
    }
    if (c.workflow) {
      line(0, "workflow:");
      line(2, "tasks:");
      for (const auto& t : c.workflow->tasks) item(4, [&](int i) { task(i, t); });
    }
  }

  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string print_config(const Config& config) {
  Printer printer;
  printer.config(config);
  return printer.take();
}

}  // namespace taskhive
