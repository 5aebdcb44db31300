// Hostile input ends in a clear error naming the limit or the problem, quickly and without a crash: empty and
// binary files, tabs, huge files (refused before they are read), deep nesting (refused before the recursive
// parser sees it), alias bombs (aliases count as the nodes they stand for) and random garbage.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <unistd.h>

#include <taskhive/config.hpp>

namespace fs = std::filesystem;
using taskhive::load_config_string;

namespace {

taskhive::ConfigOptions options() {
  taskhive::ConfigOptions o;
  o.environment = nullptr;
  return o;
}

// Loads `text` and returns its diagnostics; fails the test if that took a second or more.
std::string load(const std::string& text, const taskhive::ConfigOptions& o = options()) {
  const auto start = std::chrono::steady_clock::now();
  const auto result = load_config_string(text, "h.yaml", o);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < std::chrono::seconds(1));
  CHECK_FALSE(result.ok());
  return taskhive::format_diagnostics(result.diagnostics);
}

std::string repeat(const std::string& s, std::size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

TEST_CASE("empty and blank files") {
  const std::string empty = "h.yaml:1:1: error: the config is empty: it needs a 'pipeline' or a 'workflow'\n";
  CHECK(load("") == empty);
  CHECK(load("\n\n   \n") == empty);
  CHECK(load("# only a comment\n") == empty);
  CHECK(load("---\n...\n") == empty);
}

TEST_CASE("binary garbage is refused before parsing") {
  CHECK(load(std::string("pipeline:\n  x: \0\0\1", 17)) ==
        "h.yaml:2:6: error: NUL byte: a config must be text, not binary data\n");
  CHECK(load("a: \xff\xfe\n") ==
        "h.yaml:1:4: error: invalid UTF-8 (byte 0xff): a config must be UTF-8 text\n");
  CHECK(load("a: \xc0\xaf\n") ==
        "h.yaml:1:4: error: invalid UTF-8 (byte 0xc0): a config must be UTF-8 text\n");
  CHECK(load("a: \xed\xa0\x80\n") ==
        "h.yaml:1:4: error: invalid UTF-8 (byte 0xed): a config must be UTF-8 text\n");
  CHECK(load("a: b\x1b[0m\n") == "h.yaml:1:5: error: control character U+001B: a config must be text\n");
  CHECK(load("\x7f"
             "ELF\x02\x01\x01") == "h.yaml:1:1: error: control character U+007F: a config must be text\n");
  // UTF-8 text is fine (the error here is only the missing pipeline).
  CHECK(load("scheduler: {order: \"h\xc3\xa9llo \xf0\x9f\x90\x9d\"}\n").find("expected aging or strict") !=
        std::string::npos);
}

TEST_CASE("tabs used for indentation get a message saying so") {
  CHECK(load("scheduler:\n\tworkers: 2\n") ==
        "h.yaml:2:1: error: tab character in indentation: YAML allows only spaces for indentation\n");
  CHECK(load("scheduler:\n  \tworkers: 2\n") ==
        "h.yaml:2:3: error: tab character in indentation: YAML allows only spaces for indentation\n");
  // Tabs elsewhere are not indentation: after a key, in quotes, inside a block scalar's text.
  const std::string fine =
      "scheduler:\n  order:\tstrict\n"
      "pipeline:\n  source: {name: \"a\tb\", uses: f.s, params: {text: |\n      x\n  \t  y\n}}\n";
  CHECK(load(fine).find("tab character") == std::string::npos);
}

TEST_CASE("a file over max_bytes is refused before it is parsed or read") {
  auto o = options();
  o.limits.max_bytes = 1000;
  CHECK(load(std::string(1001, '#'), o) ==
        "h.yaml:1:1: error: the file is 1001 bytes, over the limit of 1000 (limits.max_bytes)\n");

  // A sparse file of 64 GiB: refused from its size, without reading it.
  std::string pattern = (fs::temp_directory_path() / "taskhive-huge-XXXXXX").string();
  const int fd = mkstemp(pattern.data());
  REQUIRE(fd >= 0);
  close(fd);
  fs::resize_file(pattern, std::uint64_t{64} << 30);
  const auto start = std::chrono::steady_clock::now();
  const auto result = taskhive::load_config(pattern, options());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
  fs::remove(pattern);
  CHECK(taskhive::format_diagnostics(result.diagnostics) ==
        pattern +
            ":1:1: error: the file is 68719476736 bytes, over the limit of 1048576 (limits.max_bytes)\n");
}

TEST_CASE("deep nesting is refused before the recursive parser can overflow the stack") {
  CHECK(load(std::string(100'000, '[')) ==
        "h.yaml:1:65: error: nesting deeper than 64 levels (limits.max_depth)\n");
  CHECK(load("a: " + std::string(100'000, '{')) ==
        "h.yaml:1:68: error: nesting deeper than 64 levels (limits.max_depth)\n");
  CHECK(load("a: " + repeat("[{x: ", 50'000)) ==
        "h.yaml:1:164: error: nesting deeper than 64 levels (limits.max_depth)\n");
  // Block nesting: "- - - - x" is a list in a list in a list...; and indentation, one level per line.
  CHECK(load(repeat("- ", 100'000) + "x\n") ==
        "h.yaml:1:129: error: nesting deeper than 64 levels (limits.max_depth)\n");
  std::string indented;
  for (int i = 0; i < 200; ++i) indented += std::string(static_cast<std::size_t>(i), ' ') + "a:\n";
  CHECK(load(indented) == "h.yaml:65:65: error: nesting deeper than 64 levels (limits.max_depth)\n");
  // Brackets inside quotes and comments are not nesting.
  const std::string quoted =
      "scheduler: {order: \"" + std::string(1000, '[') + "\"}  # " + std::string(100, '{') + "\n";
  CHECK(load(quoted).find("max_depth") == std::string::npos);
}

TEST_CASE("an alias bomb is stopped by the node budget") {
  // "Billion laughs": each level is nine aliases of the one before, 9^9 nodes when expanded.
  std::string bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int k = 0; k < 9; ++k) bomb += std::string(k ? ", *" : "*") + static_cast<char>(c - 1);
    bomb += "]\n";
  }
  CHECK(load(bomb) ==
        "h.yaml:6:8: error: more than 100000 nodes (limits.max_nodes; an alias counts as the nodes it stands "
        "for)\n");
  CHECK(load("a: &x [1, *x]\n") ==
        "h.yaml:1:11: error: alias inside the node it refers to: a recursive alias\n");
  CHECK(load("a: *nope\n").find("h.yaml:1:4: error: invalid YAML:") == 0);
}

TEST_CASE("too many nodes without aliases") {
  std::string many = "pipeline:\n  source:\n    params:\n";
  for (int i = 0; i < 60'000; ++i) many += "      k" + std::to_string(i) + ": v\n";
  CHECK(load(many) ==
        "h.yaml:50000:15: error: more than 100000 nodes (limits.max_nodes; an alias counts as the "
        "nodes it stands for)\n");
}

TEST_CASE("many errors on one long line stay fast") {
  // 30000 unset variables, escaped so their text is not found verbatim where the value was written.
  std::string text = "pipeline: {source: {name: s, uses: a.b, params: {";
  for (int i = 0; i < 30'000; ++i) text += "k" + std::to_string(i) + ": \"\\x24{v}\", ";
  text += "}}}\n";
  const std::string diagnostics = load(text);
  CHECK(std::count(diagnostics.begin(), diagnostics.end(), '\n') == 30'001);  // and the missing sink
}

TEST_CASE("YAML syntax errors are reported at yaml-cpp's position") {
  CHECK(load("pipeline: [a, b\n") == "h.yaml:2:1: error: invalid YAML: end of sequence flow not found\n");
  CHECK(load("a: b\n c: d\n") == "h.yaml:2:3: error: invalid YAML: illegal map value\n");
  CHECK(load("pipeline: {}\n---\nworkflow: {}\n") ==
        "h.yaml:2:1: error: a second YAML document starts here; a config is one document\n");
}

TEST_CASE("random garbage never crashes and always ends in an error") {
  std::mt19937 random(20261128);  // fixed: the same inputs every run
  const std::string alphabet = "ab: -[]{},&*!|>'\"#%@`\n\t ?\\0123456789$";
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const std::size_t length = random() % 200;
    for (std::size_t i = 0; i < length; ++i) {
      text += round % 3 == 0 ? static_cast<char>(random() % 256) : alphabet[random() % alphabet.size()];
    }
    const auto result = load_config_string(text, "g.yaml", options());
    INFO(text);
    CHECK_FALSE(result.ok());
  }
}
