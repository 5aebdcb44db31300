#include "taskhive/diagnostics.hpp"

#include <algorithm>
#include <tuple>

#include <fmt/format.h>

namespace taskhive {

const char* to_string(Severity severity) noexcept {
  return severity == Severity::error ? "error" : "warning";
}

std::string Diagnostic::format() const {
  if (line <= 0) return fmt::format("{}: {}: {}", file, to_string(severity), message);
  return fmt::format("{}:{}:{}: {}: {}", file, line, col, to_string(severity), message);
}

void Diagnostics::add(Diagnostic diagnostic) {
  if (!seen_.insert(diagnostic.format()).second) return;
  if (diagnostic.severity == Severity::error) ++errors_;
  items_.push_back(std::move(diagnostic));
}

void Diagnostics::error(const SourcePos& pos, std::string message) {
  add({Severity::error, pos.file, pos.line, pos.col, std::move(message)});
}

void Diagnostics::warning(const SourcePos& pos, std::string message) {
  add({Severity::warning, pos.file, pos.line, pos.col, std::move(message)});
}

std::vector<Diagnostic> Diagnostics::sorted() const {
  std::vector<Diagnostic> out = items_;
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.file, a.line, a.col) < std::tie(b.file, b.line, b.col);
  });
  return out;
}

std::string format_diagnostics(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const auto& d : diagnostics) {
    out += d.format();
    out += '\n';
  }
  return out;
}

}  // namespace taskhive
