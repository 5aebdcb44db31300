// text: lines, regular-expression search and word counts over files, for pipelines such as
// configs/grep-tree.yaml and configs/wordcount.yaml.
//
// @code
//   source: {name: files, uses: fs.walk, params: {root: src}}
//   stages:
//     - {name: grep, uses: text.grep, params: {pattern: "TODO|FIXME", format: grep}, concurrency: 2}
//   sink: {name: out, uses: text.write, params: {path: "-"}}     # prints src/a.c:12:  // TODO ...
// @endcode
//
//   transform "lines":      one item per line of the file an item names
//   transform "grep":       the lines matching an RE2 pattern: of a file item (read in 256 KiB chunks), or
//                           line items passed through when they match. A pattern of plain word characters,
//                           or a fixed one, is searched with memmem, RE2 being needed only for the others
//   transform "words":      the lowercase words of a line item or of a file item's lines (see `batch`)
//   sink "wordcount":       the N most frequent words, as "COUNT WORD" lines, to a file or stdout
//   sink "write":           each item's bytes and a newline, to a file or stdout
//
// A file item names its file by metadata "path", else by its bytes (the raw path, as fs.walk gives it).
//
// Lines are what `grep` calls lines: bytes up to a '\n' (not included); a last line without a '\n' is a line
// too; an empty file has none. A '\r' before the '\n' stays part of the line, as it does for GNU grep on
// Linux (so `foo$` does not match "foo\r\n"). Files are read as bytes, never loaded whole: memory is one
// 256 KiB chunk plus the longest line. Every line item carries metadata "path" (or "path_base64") and "line"
// (1-based).
//
// A word is a maximal run of ASCII letters, digits and apostrophes, with the apostrophes at either end
// dropped, lowercased: "Don't" is "don't", "'tis" is "tis", "x86_64" is "x86" and "64". Other bytes,
// non-ASCII ones included, separate words (this plugin does not decode UTF-8).

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <re2/re2.h>
#include <taskhive/plugin.hpp>

#include "bytes_text.hpp"
#include "decimal.hpp"
#include "regular_file.hpp"

namespace {

namespace plugin = taskhive::plugin;
using taskhive_samples::base64_decode;
using taskhive_samples::base64_encode;
using taskhive_samples::open_regular_file;
using taskhive_samples::parse_decimal;
using taskhive_samples::printable;
using taskhive_samples::valid_utf8;

constexpr std::size_t kChunk = 256 * 1024;

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::system_category().message(errno));
}

// The file a file item names, and how line items refer to it. fs.walk gives the raw path as the item's bytes
// and, as metadata, "path" when it is valid UTF-8 (which the ABI wants of metadata) and "path_base64" when
// not (bytes_text.hpp); line items carry on whichever of the two the file item had, or, for an item without
// either, the one its bytes call for.
struct FileRef {
  std::string raw;  // to open, and for grep's PATH:LINE:TEXT
  const char* key;  // "path" or "path_base64"
  std::string value;
  // The file's size when the walk saw it (fs.walk's "size"), or none. Only a hint for reading: see
  // for_each_block.
  std::optional<std::uint64_t> size_hint;
};

std::optional<std::uint64_t> size_hint_of(const plugin::KeyValues& meta) {
  const auto text = meta.get("size");
  return text ? parse_decimal(*text) : std::nullopt;
}

FileRef file_of(const plugin::Item& item) {
  const auto meta = item.metadata();
  const auto size = size_hint_of(meta);
  if (const auto path = meta.get("path")) return {std::string(*path), "path", std::string(*path), size};
  std::string raw(item.text());
  if (const auto b64 = meta.get("path_base64"))
    return {std::move(raw), "path_base64", std::string(*b64), size};
  if (!valid_utf8(raw)) {
    std::string b64 = base64_encode(raw);
    return {std::move(raw), "path_base64", std::move(b64), size};
  }
  std::string value = raw;
  return {std::move(raw), "path", std::move(value), size};
}

// The raw path of a line item: its "path", or its "path_base64" decoded; empty when it has neither.
std::string raw_path_of_line(const plugin::KeyValues& meta) {
  if (const auto path = meta.get("path")) return std::string(*path);
  if (const auto b64 = meta.get("path_base64")) return base64_decode(*b64).value_or("");
  return {};
}

// Keeps libre2 loaded for the life of the process, whatever happens to this plugin. RE2 allocates a few
// process-wide singletons once (an empty string, two empty maps) and never frees them: with libre2 unloaded
// alongside the plugin (dlclose, hot reload), every load would leak them anew, and LeakSanitizer reports
// them.
void pin_re2() {
  static const bool pinned = [] {
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void*>(&RE2::QuoteMeta), &info) == 0 || !info.dli_fname) return false;
    return ::dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) != nullptr;
  }();
  (void)pinned;
}

// How a transform reads an item: "file" names a file, "text" is a line, "auto" is a line when it has metadata
// "line" (as text.lines' items do) and a file otherwise.
enum class Input { automatic, file, text };

Input parse_input(const plugin::Params& params) {
  const std::string input = params.get_or("input", "auto");
  if (input == "auto") return Input::automatic;
  if (input == "file") return Input::file;
  if (input == "text") return Input::text;
  throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "input must be auto, file or text, not \"" + input + "\"");
}

bool is_file(Input input, const plugin::Item& item) {
  if (input == Input::automatic) return !item.metadata().get("line");
  return input == Input::file;
}

class ReadFd {
 public:
  // A FIFO in the file's place is refused, not waited on (see open_regular_file).
  explicit ReadFd(std::string path) : path_(std::move(path)), fd_(open_regular_file(path_)) {}
  ~ReadFd() { ::close(fd_); }
  ReadFd(const ReadFd&) = delete;
  ReadFd& operator=(const ReadFd&) = delete;

  // Up to `size` bytes; 0 at the end of the file.
  std::size_t read(char* data, std::size_t size) {
    for (;;) {
      const ssize_t n = ::read(fd_, data, size);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) fail_errno(printable(path_));
    }
  }

 private:
  std::string path_;
  int fd_;
};

// Calls on_block(block) with the whole file in order, cut after a '\n': every block but the last ends with
// one, so blocks hold whole lines. `buffer` is reused across files; a line longer than a chunk grows it.
//
// With the size the walk saw, a read that comes back short exactly at that size is taken as the end of the
// file, as GNU grep stops at fstat's size: on a local file system a regular file's read is short only at its
// end, so this saves the read that would return 0, one system call in four for a small file. Only exactly
// there: a file that grew or shrank since the walk reads on to the read that returns 0, and so do files whose
// reads are short before their end (network and FUSE file systems) unless one happens to stop at that very
// size. A size of 0 is no hint: /proc files say 0 and come a page per read.
template <class OnBlock>
void for_each_block(const FileRef& file_ref, std::string& buffer, OnBlock&& on_block) {
  if (buffer.size() > 4 * kChunk) std::string().swap(buffer);  // the last file's long line: not kept for ever
  ReadFd file(file_ref.raw);
  std::size_t kept = 0;  // the start of a line that the previous read did not finish
  std::uint64_t total = 0;
  bool at_end = false;
  for (;;) {
    if (buffer.size() < kept + kChunk) buffer.resize(kept + kChunk);
    const std::size_t wanted = buffer.size() - kept;
    const std::size_t n = at_end ? 0 : file.read(buffer.data() + kept, wanted);
    total += n;
    if (n == 0) {
      if (kept > 0) on_block(std::string_view(buffer.data(), kept));
      return;
    }
    at_end = n < wanted && file_ref.size_hint.value_or(0) > 0 && total == *file_ref.size_hint;
    const std::size_t end = kept + n;
    const void* last_nl = ::memrchr(buffer.data() + kept, '\n', n);
    if (!last_nl) {
      kept = end;
      continue;
    }
    const std::size_t cut = static_cast<std::size_t>(static_cast<const char*>(last_nl) - buffer.data()) + 1;
    on_block(std::string_view(buffer.data(), cut));
    std::memmove(buffer.data(), buffer.data() + cut, end - cut);
    kept = end - cut;
  }
}

// grep -n counts every line of a file, matching or not. Eight bytes at a time: a '\n' XOR '\n' is a zero
// byte, the expression below sets the top bit of exactly the zero bytes (no carry crosses bytes), and a
// multiply adds those bits up (std::popcount is a libgcc call without -mpopcnt). memchr per line cost a
// call per line: a third of text.grep's own time on short lines.
std::uint64_t count_newlines(std::string_view text) {
  constexpr std::uint64_t kNewlines = 0x0a0a0a0a0a0a0a0aULL, kLow7 = 0x7f7f7f7f7f7f7f7fULL;
  std::uint64_t n = 0;
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    const std::uint64_t x = word ^ kNewlines;
    const std::uint64_t newline_bits = ~(((x & kLow7) + kLow7) | x | kLow7);  // 0x80 per '\n' byte
    n += ((newline_bits >> 7) * 0x0101010101010101ULL) >> 56;  // sums the bytes' 0/1: at most 8
  }
  for (; i < text.size(); ++i) n += text[i] == '\n';
  return n;
}

// Calls on_line(line, number) for every line of `path`, numbers from 1.
template <class OnLine>
void for_each_line(const FileRef& file, std::string& buffer, OnLine&& on_line) {
  std::uint64_t number = 0;
  for_each_block(file, buffer, [&](std::string_view block) {
    while (!block.empty()) {
      const std::size_t nl = block.find('\n');
      on_line(block.substr(0, nl), ++number);
      block.remove_prefix(nl == std::string_view::npos ? block.size() : nl + 1);
    }
  });
}

// Emits `bytes` with metadata path (or path_base64) and line.
void emit_line(plugin::Emitter& emit, std::string_view bytes, const FileRef& file, std::uint64_t line) {
  const std::string number = std::to_string(line);
  const taskhive_kv meta[] = {{file.key, file.value.c_str()}, {"line", number.c_str()}};
  emit(bytes, plugin::KeyValues(meta, 2));
}

class Lines {
 public:
  explicit Lines(const plugin::Params&) {}

  void process(const plugin::Item& in, plugin::Emitter& emit) {
    const FileRef file = file_of(in);
    for_each_line(file, buffer_,
                  [&](std::string_view line, std::uint64_t number) { emit_line(emit, line, file, number); });
  }

 private:
  std::string buffer_;
};

class Grep {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"pattern", TASKHIVE_PARAM_STRING, 1, nullptr,
       "an RE2 regular expression (linear time: no backtracking)"},
      {"fixed", TASKHIVE_PARAM_BOOL, 0, "false", "take the pattern as a literal string, like grep -F"},
      {"ignore_case", TASKHIVE_PARAM_BOOL, 0, "false", "match letters of either case, like grep -i"},
      {"format", TASKHIVE_PARAM_STRING, 0, "line",
       "line: one item per matching line, its text; grep: PATH:LINE:TEXT lines as grep -n prints them, the "
       "matches of each chunk of a file together in one item (newline-separated), so a file with many "
       "matches does not cost an item each"},
      {"input", TASKHIVE_PARAM_STRING, 0, "auto",
       "file (a file item: read it), text (a line item) or auto (a line if it has metadata line)"}};

  explicit Grep(const plugin::Params& params) : input_(parse_input(params)) {
    pin_re2();
    const std::string format = params.get_or("format", "line");
    if (format != "line" && format != "grep")
      throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "format must be line or grep, not \"" + format + "\"");
    grep_format_ = format == "grep";
    RE2::Options options;
    // POSIX syntax with one_line off gives ^ and $ at every line boundary, so a whole chunk can be searched
    // at once and still match as line by line; the Perl classes and \b are switched back on.
    options.set_posix_syntax(true);
    options.set_one_line(false);
    options.set_perl_classes(true);
    options.set_word_boundary(true);
    options.set_never_nl(true);
    options.set_literal(params.get_or("fixed", "false") == "true");
    options.set_case_sensitive(params.get_or("ignore_case", "false") != "true");
    options.set_log_errors(false);
    std::string pattern = params.get_or("pattern", "");
    if (pattern.find('\n') != std::string::npos) {
      // As grep: lines never hold a newline, so one in the pattern separates patterns, any of which matches
      // (an empty one matches every line). Without this the pattern could never match, and silently did not.
      pattern = any_of_lines(pattern, options);
      options.set_literal(false);
    }
    re_ = std::make_unique<RE2>(pattern, options);
    if (!re_->ok()) throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "bad pattern: " + re_->error());
    if (options.case_sensitive() && !pattern.empty() && is_plain_word(pattern, options.literal()))
      literal_ = pattern;
  }

  // "a\nb" as the alternation (a)|(b); fixed strings are quoted first. Each part must be a pattern on its
  // own, as for grep: joined, "(x" and "y)" would make a valid "((x)|(y))" that means something else.
  static std::string any_of_lines(const std::string& patterns, const RE2::Options& options) {
    std::string alternation;
    std::size_t start = 0;
    for (int line = 1;; ++line) {
      const auto end = patterns.find('\n', start);
      const std::string one =
          patterns.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (!options.literal()) {
        const RE2 alone(one, options);
        if (!alone.ok())
          throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM,
                              "bad pattern (line " + std::to_string(line) + " of it): " + alone.error());
      }
      if (start > 0) alternation += '|';
      alternation += "(" + (options.literal() ? RE2::QuoteMeta(one) : one) + ")";
      if (end == std::string::npos) return alternation;
      start = end + 1;
    }
  }

  void process(const plugin::Item& in, plugin::Emitter& emit) {
    if (!is_file(input_, in)) {
      if (!RE2::PartialMatch(in.text(), *re_)) return;
      if (!grep_format_) return emit(in.text(), in.metadata());
      const auto meta = in.metadata();
      const auto line = meta.get("line");
      const std::string path = raw_path_of_line(meta);
      formatted_.clear();
      append_grep(formatted_, path, line ? std::stoull(std::string(*line)) : 0, in.text());
      return emit(formatted_, meta);
    }
    const FileRef file = file_of(in);
    std::uint64_t first = 1;  // the number of the block's first line
    for_each_block(file, buffer_,
                   [&](std::string_view block) { first = grep_block(block, first, file, emit); });
  }

 private:
  // Emits the matching lines of `block` (whole lines) whose first line is number `first`, an item each, or in
  // the grep format one item for all; returns the number of the line after the block. RE2 searches the whole
  // block, so lines without a match cost no per-line call.
  std::uint64_t grep_block(std::string_view block, std::uint64_t first, const FileRef& file,
                           plugin::Emitter& emit) {
    std::size_t pos = 0;      // always a line start: lines before it are done
    std::size_t counted = 0;  // newlines before it are counted in `number`
    std::uint64_t number = first;
    std::uint64_t matches = 0, first_match = 0;
    formatted_.clear();
    std::size_t at = 0, length = 0;
    while (pos < block.size() && find(block, pos, at, length)) {
      const std::size_t start = line_start(block, pos, at);
      if (start == block.size())
        break;  // an empty match after the block's last '\n' (say `\z`) is on no line
      std::size_t end = block.find('\n', at);
      if (end == std::string_view::npos) end = block.size();
      const std::string_view line = block.substr(start, end - start);
      number += count_newlines(block.substr(counted, start - counted));
      counted = start;
      // A match running past its line's end is no match of that line (never_nl should prevent it; this makes
      // sure), but the line may still match on its own.
      const bool within = at + length <= end;
      if (within || RE2::PartialMatch(line, *re_)) {
        if (!grep_format_) {
          emit_line(emit, line, file, number);
        } else {
          if (matches++ == 0) first_match = number;
          if (!formatted_.empty()) formatted_ += '\n';
          append_grep(formatted_, file.raw, number, line);
        }
      }
      pos = end + 1;
    }
    if (matches > 0) {
      const std::string line_text = std::to_string(first_match), count_text = std::to_string(matches);
      const taskhive_kv meta[] = {
          {file.key, file.value.c_str()}, {"line", line_text.c_str()}, {"matches", count_text.c_str()}};
      emit(formatted_, plugin::KeyValues(meta, 3));
    }
    return number + count_newlines(block.substr(counted));
  }

  // The first match in block[from, end): its offset and length. A literal is found with memmem (glibc's is a
  // two-way search that skips ahead), as GNU grep does with its literal searcher: RE2 would take a read lock
  // on its cache for each call and memchr for the first byte at every occurrence of it.
  bool find(std::string_view block, std::size_t from, std::size_t& at, std::size_t& length) const {
    if (!literal_.empty()) {
      const void* hit = ::memmem(block.data() + from, block.size() - from, literal_.data(), literal_.size());
      if (!hit) return false;
      at = static_cast<std::size_t>(static_cast<const char*>(hit) - block.data());
      length = literal_.size();
      return true;
    }
    re2::StringPiece match;  // Debian 12's RE2 (2022-06) predates std::string_view submatches
    if (!re_->Match(block, from, block.size(), RE2::UNANCHORED, &match, 1)) return false;
    at = static_cast<std::size_t>(match.data() - block.data());
    length = match.size();
    return true;
  }

  // Whether `pattern` matches exactly its own bytes, anywhere in a line: a fixed pattern without '\n', or a
  // regular expression of letters, digits and '_' only (ASCII, so UTF-8 decoding cannot make a difference).
  static bool is_plain_word(std::string_view pattern, bool fixed) {
    if (fixed) return pattern.find('\n') == std::string_view::npos;
    return std::all_of(pattern.begin(), pattern.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
  }

  static std::size_t line_start(std::string_view block, std::size_t from, std::size_t at) {
    const void* nl = ::memrchr(block.data() + from, '\n', at - from);
    return nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - block.data()) + 1 : from;
  }

  static void append_grep(std::string& out, std::string_view path, std::uint64_t number,
                          std::string_view line) {
    out.append(path);
    out += ':';
    out += std::to_string(number);
    out += ':';
    out.append(line);
  }

  Input input_;
  bool grep_format_ = false;
  std::unique_ptr<RE2> re_;
  std::string literal_;  // the pattern, when it is a plain literal that find() searches without RE2
  std::string buffer_;
  std::string formatted_;
};

// Calls on_word(word) for each word of `text` (see the file comment), lowercased into `word`.
template <class OnWord>
void for_each_word(std::string_view text, std::string& word, OnWord&& on_word) {
  const auto is_word_byte = [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '\'';
  };
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && !is_word_byte(static_cast<unsigned char>(text[i]))) ++i;
    std::size_t j = i;
    while (j < text.size() && is_word_byte(static_cast<unsigned char>(text[j]))) ++j;
    std::size_t b = i, e = j;
    while (b < e && text[b] == '\'') ++b;
    while (e > b && text[e - 1] == '\'') --e;
    if (b < e) {
      word.assign(text.substr(b, e - b));
      for (char& c : word)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      on_word(word);
    }
    i = j;
  }
}

class Words {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"input", TASKHIVE_PARAM_STRING, 0, "auto",
       "file (a file item: read it), text (a line item) or auto (a line if it has metadata line)"},
      {"batch", TASKHIVE_PARAM_BOOL, 0, "true",
       "true: the words of a line item, or of each 256 KiB chunk of a file, in one item, one word per line; "
       "false: an item per word"}};

  explicit Words(const plugin::Params& params)
      : input_(parse_input(params)), batch_(params.get_or("batch", "true") == "true") {}

  void process(const plugin::Item& in, plugin::Emitter& emit) {
    if (!is_file(input_, in)) {
      batch_words_.clear();
      for_each_word(in.text(), word_, [&](const std::string& w) { add(w, emit, in.metadata()); });
      if (!batch_words_.empty()) emit(batch_words_, in.metadata());
      return;
    }
    // Batched, a chunk's words are one item: an item per word would cost the host a copy and a slot in the
    // file's message each, some 150 bytes a word, where the words themselves take a few.
    const FileRef file = file_of(in);
    std::uint64_t number = 0;
    for_each_block(file, buffer_, [&](std::string_view block) {
      batch_words_.clear();
      const std::uint64_t first = number + 1;
      while (!block.empty()) {
        const std::size_t nl = block.find('\n');
        ++number;
        for_each_word(block.substr(0, nl), word_, [&](const std::string& w) {
          if (batch_) return add(w, emit, {nullptr, 0});
          emit_line(emit, w, file, number);
        });
        block.remove_prefix(nl == std::string_view::npos ? block.size() : nl + 1);
      }
      if (!batch_words_.empty()) emit_line(emit, batch_words_, file, first);
    });
  }

 private:
  // Batched: appends the word to the item being built; else emits it at once.
  void add(const std::string& word, plugin::Emitter& emit, const plugin::KeyValues& meta) {
    if (!batch_) return emit(word, meta);
    if (!batch_words_.empty()) batch_words_ += '\n';
    batch_words_ += word;
  }

  Input input_;
  bool batch_;
  std::string buffer_;
  std::string word_;
  std::string batch_words_;
};

// An output file, or stdout for "-". Buffered; errors surface at flush and close.
class Output {
 public:
  explicit Output(const std::string& path) : path_(path) {
    if (path == "-") {
      file_ = stdout;
      return;
    }
    file_ = std::fopen(path.c_str(), "wb");
    if (!file_) fail_errno("cannot open " + path + " for writing");
  }
  ~Output() {
    if (file_ && file_ != stdout) std::fclose(file_);
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  void write(std::string_view bytes) {
    if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) fail_errno("writing " + path_);
  }
  void flush() {
    if (std::fflush(file_) != 0) fail_errno("writing " + path_);
  }
  void close() {
    flush();
    if (file_ == stdout) return;
    const int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) fail_errno("closing " + path_);
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

class WordCount {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"n", TASKHIVE_PARAM_INT, 0, "20", "how many words to write, most frequent first; 0 for all"},
      {"path", TASKHIVE_PARAM_STRING, 0, "-", "where to write them; - for stdout"}};

  explicit WordCount(const plugin::Params& params)
      : n_(params.get_int("n", 20, 0, std::numeric_limits<std::int64_t>::max())),
        out_(params.get_or("path", "-")) {}

  // Every whitespace-separated token of the item is a word as it stands: text.words has normalised it.
  void process(const plugin::Item& in) {
    std::string_view text = in.text();
    constexpr std::string_view space = " \t\n\r\f\v";
    while (!text.empty()) {
      const std::size_t b = text.find_first_not_of(space);
      if (b == std::string_view::npos) break;
      text.remove_prefix(b);
      const std::size_t e = std::min(text.find_first_of(space), text.size());
      const std::string_view word = text.substr(0, e);
      // Looked up as a view: a string is made only for a word seen for the first time.
      if (const auto it = counts_.find(word); it != counts_.end())
        ++it->second;
      else
        counts_.emplace(word, 1);
      text.remove_prefix(e);
    }
  }

  // "COUNT WORD" lines, the most frequent first, ties in byte order of the words.
  void finish() {
    std::vector<std::pair<std::string_view, std::uint64_t>> words(counts_.begin(), counts_.end());
    const auto before = [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    };
    const std::size_t n = n_ == 0 ? words.size() : std::min(words.size(), static_cast<std::size_t>(n_));
    std::partial_sort(words.begin(), words.begin() + static_cast<std::ptrdiff_t>(n), words.end(), before);
    std::string line;
    for (std::size_t i = 0; i < n; ++i) {
      line = std::to_string(words[i].second);
      line += ' ';
      line.append(words[i].first);
      line += '\n';
      out_.write(line);
    }
    out_.close();
  }

 private:
  long long n_;
  Output out_;
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::uint64_t, Hash, std::equal_to<>> counts_;
};

class Write {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"path", TASKHIVE_PARAM_STRING, 0, "-", "the file to write (truncated first); - for stdout"}};

  explicit Write(const plugin::Params& params) : out_(params.get_or("path", "-")) {}

  void process(const plugin::Item& in) {
    out_.write(in.text());
    out_.write("\n");
  }
  void flush() { out_.flush(); }
  void finish() { out_.close(); }

 private:
  Output out_;
};

}  // namespace

TASKHIVE_PLUGIN(
    "text", "1.0.0", "lines, RE2 search and word counts over files",
    plugin::transform<Lines>("lines",
                             "one item per line of the file an item names, with metadata path and line"),
    plugin::transform<Grep>("grep", "the lines matching an RE2 pattern, from a file item or line items"),
    plugin::transform<Words>("words", "the lowercase words of a line item, or of each line of a file item"),
    plugin::sink<WordCount>("wordcount", "the N most frequent words, as COUNT WORD lines"),
    plugin::sink<Write>("write", "each item's bytes and a newline, to a file or stdout"));
