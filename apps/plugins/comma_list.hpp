#pragma once
// Params that hold lists (fs.walk's include / exclude globs, out's fields) are written as one comma-separated
// string, since a plugin parameter is a single string.
//
// @code
//   split_comma_list(" *.log, *.txt ,,") == std::vector<std::string>{"*.log", "*.txt"}
// @endcode

#include <string>
#include <string_view>
#include <vector>

namespace taskhive_samples {

/// The entries of a comma-separated list, spaces around each trimmed, empty entries dropped.
inline std::vector<std::string> split_comma_list(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view part = list.substr(0, comma);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (!part.empty()) out.emplace_back(part);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace taskhive_samples
