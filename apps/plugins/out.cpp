// out: the output sample plugin (issue 6).
//   sink "jsonl":    one JSON object per item, its metadata as string fields (the keys named in `numbers` as
//                    JSON numbers when they hold a decimal integer)
//   sink "csv":      one RFC 4180 row per item, with a header row
//   sink "summary":  counts items and their total "size"; one line at the end
//
// @code
//   sink:
//     - {name: out, uses: out.jsonl, params: {path: "${out:--}", fields: "path,size,sha256", numbers: size}}
//     - {name: table, uses: out.csv, params: {path: hashes.csv, fields: "path,sha256"}}
//     - {name: total, uses: out.summary}
// @endcode
//
// `fields` picks and orders the keys; without it an item's metadata is written in the order it arrives.
// Bytes that are not UTF-8 (bytes_text.hpp): in JSON a value that is not valid UTF-8 is written as
// "KEY_base64" (base64 of its bytes), and a field named KEY that an item carries only as "KEY_base64" (as
// fs.walk carries such paths) is written as such, so every byte survives and every line is valid JSON. CSV
// carries bytes, so there the KEY column gets the decoded raw bytes.
// Output is buffered and written in large blocks; flush() (host's request) and finish() write what is left.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <taskhive/plugin.hpp>

#include "bytes_text.hpp"
#include "comma_list.hpp"
#include "decimal.hpp"

namespace {

namespace plugin = taskhive::plugin;
using taskhive_samples::base64_decode;
using taskhive_samples::base64_encode;
using taskhive_samples::parse_decimal;
using taskhive_samples::printable;
using taskhive_samples::split_comma_list;
using taskhive_samples::valid_utf8;

constexpr std::size_t kFlushAt = 64 * 1024;

// A file, stdout ("-") or stderr (""), written in blocks. Owns the descriptor only when it opened it.
class Output {
 public:
  // `empty_is_stderr`: for out.summary, whose default is the terminal's diagnostics, not the data stream.
  explicit Output(const std::string& path, bool empty_is_stderr = false) : name_(path) {
    if (path == "-") {
      fd_ = STDOUT_FILENO;
      name_ = "stdout";
    } else if (path.empty() && empty_is_stderr) {
      fd_ = STDERR_FILENO;
      name_ = "stderr";
    } else {
      if (path.empty()) throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "path is empty (\"-\" is stdout)");
      fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
      if (fd_ < 0)
        throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM,
                            "cannot open " + printable(path) + " for writing: " + std::strerror(errno));
      owned_ = true;
    }
  }
  ~Output() {
    if (owned_) ::close(fd_);
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  std::string& buffer() noexcept { return buffer_; }
  void maybe_flush() {
    if (buffer_.size() >= kFlushAt) flush();
  }
  void flush() {
    std::size_t done = 0;
    while (done < buffer_.size()) {
      const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        buffer_.erase(0, done);
        throw std::runtime_error("cannot write to " + printable(name_) + ": " + std::strerror(err));
      }
      done += static_cast<std::size_t>(n);
    }
    buffer_.clear();
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool owned_ = false;
  std::string buffer_;
};

class Jsonl {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"path", TASKHIVE_PARAM_STRING, 0, "-", "the file to write; \"-\" is stdout"},
      {"fields", TASKHIVE_PARAM_STRING, 0, "",
       "comma-separated metadata keys, in output order; empty: all, in the item's order"},
      {"numbers", TASKHIVE_PARAM_STRING, 0, "",
       "comma-separated keys written as JSON numbers when their value is a decimal integer of at most 2^53 - "
       "1 "
       "in magnitude (say size), so that jq and other readers compare them as numbers; any other value stays "
       "a string"}};

  explicit Jsonl(const plugin::Params& params)
      : out_(params.get_or("path", "-")),
        fields_(split_comma_list(params.get_or("fields", ""))),
        numbers_(split_comma_list(params.get_or("numbers", ""))) {}

  void process(const plugin::Item& in) {
    const auto meta = in.metadata();
    nlohmann::ordered_json line = nlohmann::ordered_json::object();
    auto put = [&](const std::string& key, std::string_view value) {
      if (const auto number = as_number(key, value))
        line[key] = *number;
      else if (valid_utf8(value))
        line[key] = value;
      else
        line[key + "_base64"] = base64_encode(value);
    };
    if (fields_.empty()) {
      for (const auto& kv : meta.pairs()) put(kv.key, kv.value);
    } else {
      for (const auto& field : fields_) {
        if (const auto value = meta.get(field))
          put(field, *value);
        else if (const auto encoded = meta.get(field + "_base64"))
          line[field + "_base64"] = *encoded;
        // A field the item lacks is left out: the line stays true to what the item carried.
      }
    }
    out_.buffer() += line.dump();
    out_.buffer() += '\n';
    out_.maybe_flush();
  }
  void flush() { out_.flush(); }
  void finish() { out_.flush(); }

 private:
  // `value` as a number if `key` is one of `numbers` and the value is an integer written the canonical way
  // ("0", "42", "-7"; not "007", "+1" or "1e3") within +-(2^53 - 1): readers that hold numbers as doubles
  // (jq 1.6, JavaScript) give those back unchanged, and RFC 8259 calls that range interoperable.
  std::optional<std::int64_t> as_number(const std::string& key, std::string_view value) const {
    constexpr std::uint64_t kExact = (std::uint64_t{1} << 53) - 1;
    if (std::find(numbers_.begin(), numbers_.end(), key) == numbers_.end()) return std::nullopt;
    const bool negative = !value.empty() && value.front() == '-';
    const std::string_view digits = negative ? value.substr(1) : value;
    if ((digits.size() > 1 && digits.front() == '0') || (negative && digits == "0")) return std::nullopt;
    const auto magnitude = parse_decimal(digits);
    if (!magnitude || *magnitude > kExact) return std::nullopt;
    const auto n = static_cast<std::int64_t>(*magnitude);
    return negative ? -n : n;
  }

  Output out_;
  std::vector<std::string> fields_;
  std::vector<std::string> numbers_;
};

class Csv {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"path", TASKHIVE_PARAM_STRING, 0, "-", "the file to write; \"-\" is stdout"},
      {"fields", TASKHIVE_PARAM_STRING, 0, "",
       "comma-separated metadata keys, the columns in order; empty: the first item's keys"},
      {"header", TASKHIVE_PARAM_BOOL, 0, "true", "write the column names as the first row"}};

  explicit Csv(const plugin::Params& params)
      : out_(params.get_or("path", "-")),
        fields_(split_comma_list(params.get_or("fields", ""))),
        header_(params.get_or("header", "true") == "true") {}

  void process(const plugin::Item& in) {
    const auto meta = in.metadata();
    if (!started_) {
      started_ = true;
      if (fields_.empty())
        for (const auto& kv : meta.pairs()) {
          std::string key = kv.key;
          // A key carried as KEY_base64 is the column KEY (decoded below).
          if (key.size() > 7 && key.ends_with("_base64")) key.resize(key.size() - 7);
          fields_.push_back(std::move(key));
        }
      if (header_) write_row(fields_);
    }
    std::vector<std::string> row;
    row.reserve(fields_.size());
    for (const auto& field : fields_) {
      if (const auto value = meta.get(field)) {
        row.emplace_back(*value);
      } else if (const auto encoded = meta.get(field + "_base64")) {
        auto raw = base64_decode(*encoded);
        if (!raw) throw std::runtime_error(field + "_base64 is not base64");
        row.push_back(std::move(*raw));
      } else {
        row.emplace_back();  // a missing field: an empty cell, so the columns stay aligned
      }
    }
    write_row(row);
    out_.maybe_flush();
  }
  void flush() { out_.flush(); }
  void finish() { out_.flush(); }

 private:
  // RFC 4180: a field holding a comma, a double quote, CR or LF is quoted, its quotes doubled; rows end CRLF.
  void write_row(const std::vector<std::string>& cells) {
    std::string& b = out_.buffer();
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (i > 0) b += ',';
      const std::string& c = cells[i];
      if (c.find_first_of(",\"\r\n") == std::string::npos) {
        b += c;
        continue;
      }
      b += '"';
      for (const char ch : c) {
        if (ch == '"') b += '"';
        b += ch;
      }
      b += '"';
    }
    b += "\r\n";
  }

  Output out_;
  std::vector<std::string> fields_;
  bool header_;
  bool started_ = false;
};

class Summary {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"path", TASKHIVE_PARAM_STRING, 0, "",
       "where the line goes: empty is stderr, \"-\" stdout, else a file"},
      {"label", TASKHIVE_PARAM_STRING, 0, "summary", "the line's first word"}};

  explicit Summary(const plugin::Params& params)
      : out_(params.get_or("path", ""), true), label_(params.get_or("label", "summary")) {}

  void process(const plugin::Item& in) {
    ++items_;
    if (const auto size = in.metadata().get("size")) {
      const auto n = parse_decimal(*size);
      if (!n) throw std::runtime_error("size is not a number: " + printable(*size));
      bytes_ += *n;
      ++sized_;
    }
  }
  // e.g. "summary: 1204 items, 18734012 bytes (17.9 MiB)"
  void finish() {
    char human[64];
    std::snprintf(human, sizeof human, "%.1f MiB", static_cast<double>(bytes_) / (1024.0 * 1024.0));
    out_.buffer() = label_ + ": " + std::to_string(items_) + " items, " + std::to_string(bytes_) +
                    " bytes (" + human + ")";
    if (sized_ != items_) out_.buffer() += ", " + std::to_string(items_ - sized_) + " without a size";
    out_.buffer() += '\n';
    out_.flush();
  }

 private:
  Output out_;
  std::string label_;
  std::uint64_t items_ = 0;
  std::uint64_t sized_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace

TASKHIVE_PLUGIN("out", "1.0.0", "writes items: JSON lines, CSV, a one-line summary",
                plugin::sink<Jsonl>("jsonl", "one JSON object per item, its metadata as string fields"),
                plugin::sink<Csv>("csv", "one RFC 4180 CSV row per item, after a header row"),
                plugin::sink<Summary>("summary", "counts items and their total size; one line at the end"));
