#include "taskhive/graph_dot.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include <fmt/format.h>

namespace taskhive {

namespace {

constexpr std::uint32_t kReplacement = 0xFFFD;

// Decodes one UTF-8 sequence at text[i], advancing i; an invalid one (truncated, overlong, a surrogate, past
// U+10FFFF) is one byte of U+FFFD, so that nothing a user wrote can end the string early or upset dot.
std::uint32_t next_code_point(std::string_view text, std::size_t& i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = 0;
  std::uint32_t cp = 0;
  std::uint32_t min = 0;
  if (lead < 0x80) {
    ++i;
    return lead;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2, cp = lead & 0x1F, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, cp = lead & 0x0F, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, cp = lead & 0x07, min = 0x10000;
  } else {
    ++i;
    return kReplacement;
  }
  if (i + length > text.size()) {
    ++i;
    return kReplacement;
  }
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      ++i;
      return kReplacement;
    }
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return kReplacement;
  }
  i += length;
  return cp;
}

std::string concurrency_text(std::size_t concurrency) {
  if (concurrency == unlimited_concurrency) return "unlimited";
  if (concurrency == serial_concurrency) return "serial";
  return std::to_string(concurrency);
}

std::string stage_label(const Stage& stage) {
  std::string label = fmt::format("{}\nuses: {}\nconcurrency: {}", *stage.name, stage.uses.text(),
                                  concurrency_text(*stage.concurrency));
  if (*stage.on_error != OnError::fail) label += fmt::format("\non_error: {}", to_string(*stage.on_error));
  return label;
}

void pipeline_dot(std::string& out, const Pipeline& pipeline) {
  out += "digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n";
  std::vector<const Stage*> all{&pipeline.source};
  for (const auto& stage : pipeline.stages) all.push_back(&stage);
  const std::size_t first_sink = all.size();
  for (const auto& sink : pipeline.sinks) all.push_back(&sink);

  std::map<std::string, std::size_t, std::less<>> sink_ids;
  for (std::size_t i = first_sink; i < all.size(); ++i) sink_ids.emplace(*all[i]->name, i);
  std::set<std::size_t> dead_letter_sinks;
  for (const auto* stage : all) {
    if (*stage->on_error != OnError::dead_letter) continue;
    if (auto it = sink_ids.find(*stage->dead_letter); it != sink_ids.end())
      dead_letter_sinks.insert(it->second);
  }

  for (std::size_t i = 0; i < all.size(); ++i) {
    const char* shape = i == 0 ? "cds" : i >= first_sink ? "folder" : "box";
    out += fmt::format("  s{} [label={}, shape={}];\n", i, dot_quote(stage_label(*all[i])), shape);
  }
  // The main stream: source, stages, then every sink that is not only a dead letter (all of them if every
  // one is, so that the stream still ends somewhere visible).
  for (std::size_t i = 0; i + 1 < first_sink; ++i) out += fmt::format("  s{} -> s{};\n", i, i + 1);
  const bool every_sink_dead_letter = dead_letter_sinks.size() == all.size() - first_sink;
  for (std::size_t i = first_sink; i < all.size(); ++i) {
    if (every_sink_dead_letter || !dead_letter_sinks.contains(i)) {
      out += fmt::format("  s{} -> s{};\n", first_sink - 1, i);
    }
  }
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (*all[i]->on_error != OnError::dead_letter) continue;
    if (auto it = sink_ids.find(*all[i]->dead_letter); it != sink_ids.end()) {
      out += fmt::format("  s{} -> s{} [style=dashed, label=\"dead letter\"];\n", i, it->second);
    }
  }
  out += "}\n";
}

std::string task_label(const WorkflowTask& task) {
  std::string label = *task.name;
  if (task.uses) label += "\nuses: " + task.uses->text();
  if (task.pipeline) {
    if (!task.pipeline_file->empty()) {
      label += "\npipeline: " + *task.pipeline_file;
    } else {
      label += "\npipeline: " + *task.pipeline->source.name;
      for (const auto& stage : task.pipeline->stages) label += " -> " + *stage.name;
      std::string sinks;
      for (const auto& sink : task.pipeline->sinks) sinks += (sinks.empty() ? "" : ", ") + *sink.name;
      if (!sinks.empty()) label += " -> " + sinks;
    }
  }
  if (*task.priority != 0) label += fmt::format("\npriority: {}", *task.priority);
  if (*task.retry.limit > 0) label += fmt::format("\nretry: {}", *task.retry.limit);
  if (task.timeout->count() > 0) label += "\ntimeout: " + format_duration(*task.timeout);
  return label;
}

void workflow_dot(std::string& out, const Workflow& workflow) {
  out += "digraph workflow {\n  rankdir=LR;\n  node [shape=box];\n";
  std::map<std::string, std::size_t, std::less<>> ids;
  for (std::size_t i = 0; i < workflow.tasks.size(); ++i) {
    const auto& task = workflow.tasks[i];
    ids.emplace(*task.name, i);
    out += fmt::format("  t{} [label={}{}];\n", i, dot_quote(task_label(task)),
                       task.pipeline ? ", shape=box3d" : "");
  }
  for (std::size_t i = 0; i < workflow.tasks.size(); ++i) {
    const auto& task = workflow.tasks[i];
    for (const auto& dependency : task.depends_on) {
      auto it = ids.find(*dependency);
      if (it == ids.end()) continue;  // an invalid config; the graph shows what it can
      if (*task.run_if == RunIf::success) {
        out += fmt::format("  t{} -> t{};\n", it->second, i);
      } else {
        out += fmt::format("  t{} -> t{} [label=\"if: {}\", style=dashed];\n", it->second, i,
                           to_string(*task.run_if));
      }
    }
  }
  out += "}\n";
}

}  // namespace

std::string dot_quote(std::string_view text) {
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size();) {
    const std::uint32_t cp = next_code_point(text, i);
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '&':  // dot reads entities in labels: "&amp;" written by a user must stay five characters
        out += "&amp;";
        break;
      case '\t':
        out += ' ';
        break;
      default:
        if (cp < 0x20 || cp == 0x7F) {
          out += fmt::format("&#{};", kReplacement);
        } else if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else {
          out += fmt::format("&#{};", cp);
        }
    }
  }
  out += '"';
  return out;
}

std::string to_dot(const Config& config) {
  std::string out;
  if (config.pipeline) {
    pipeline_dot(out, *config.pipeline);
  } else if (config.workflow) {
    workflow_dot(out, *config.workflow);
  } else {
    out = "digraph config {\n}\n";
  }
  return out;
}

}  // namespace taskhive
