#pragma once
// Diagnostics about user files, in the format compilers use, so editors and CI annotate them:
//
// @code
//   taskhive::Diagnostics diags;
//   diags.error({"pipeline.yaml", 12, 5}, "unknown key 'workrs' in scheduler (did you mean 'workers'?)");
//   diags.warning({"pipeline.yaml", 3, 1}, "dead_letter is set but on_error is 'fail'; it is ignored");
//   for (const auto& d : diags.sorted()) std::cerr << d.format() << '\n';
//   // pipeline.yaml:3:1: warning: dead_letter is set but on_error is 'fail'; it is ignored
//   // pipeline.yaml:12:5: error: unknown key 'workrs' in scheduler (did you mean 'workers'?)
//   return diags.has_errors() ? 2 : 0;
// @endcode

#include <cstddef>
#include <set>
#include <string>
#include <vector>

namespace taskhive {

/// Where something was written: a file name as the user gave it, 1-based line and column. Line 0 means "no
/// place": a default value, or a problem with the file as a whole (it cannot be opened).
struct SourcePos {
  std::string file;
  int line = 0;
  int col = 0;

  bool known() const noexcept { return line > 0; }
  friend bool operator==(const SourcePos&, const SourcePos&) = default;
};

enum class Severity { error, warning };

/// "error" or "warning".
const char* to_string(Severity severity) noexcept;

/// One finding about a user file.
struct Diagnostic {
  Severity severity = Severity::error;
  std::string file;
  int line = 0;
  int col = 0;
  std::string message;

  /// `FILE:LINE:COL: error: MESSAGE` (or `warning:`); `FILE: error: MESSAGE` when line is 0.
  std::string format() const;
  friend bool operator==(const Diagnostic&, const Diagnostic&) = default;
};

/// Collects diagnostics in any order; sorted() hands them back by position. An exact repeat (same severity,
/// place and message) is kept once: a YAML alias makes the same node, and so the same mistake, appear twice.
class Diagnostics {
 public:
  void add(Diagnostic diagnostic);
  void error(const SourcePos& pos, std::string message);
  void warning(const SourcePos& pos, std::string message);

  bool has_errors() const noexcept { return errors_ > 0; }
  std::size_t error_count() const noexcept { return errors_; }
  std::size_t warning_count() const noexcept { return items_.size() - errors_; }
  bool empty() const noexcept { return items_.empty(); }

  /// In the order they were added.
  const std::vector<Diagnostic>& items() const noexcept { return items_; }
  /// By file name, then line, then column; the order they were added at the same place.
  std::vector<Diagnostic> sorted() const;

 private:
  std::vector<Diagnostic> items_;
  std::set<std::string> seen_;  // formatted, for the repeat check
  std::size_t errors_ = 0;
};

/// One formatted diagnostic per line, each ending in '\n'.
std::string format_diagnostics(const std::vector<Diagnostic>& diagnostics);

}  // namespace taskhive
