#pragma once
// Metadata values are strings; sizes and counts in them ("size", "compressed_size", "line") are written in
// decimal. One parser for every sample plugin that reads them back.
//
// @code
//   parse_decimal("1048576") == 1048576;  parse_decimal("12 "), parse_decimal("-1"), parse_decimal("") : none
// @endcode

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace taskhive_samples {

/// `text` as an unsigned 64-bit number if it is decimal digits only and fits; none otherwise.
inline std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;  // from_chars takes "-"
  std::uint64_t value = 0;
  const char* const end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || stop != end) return std::nullopt;
  return value;
}

}  // namespace taskhive_samples
