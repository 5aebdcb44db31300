// Sample plugin kinds through the C ABI, the way the pipeline host calls them, on what an end-to-end run
// cannot set up on purpose:
// - text.grep on a file item whose "size" (fs.walk's, from before the read) is wrong because the file grew or
//   shrank since, or says 0 for a /proc file, and its two search paths (memmem for a plain word, RE2
//   otherwise) agreeing line for line;
// - out.jsonl's `numbers` on values that are and are not canonical decimal integers.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <sys/stat.h>

#include <taskhive/plugin_abi.h>
#include <nlohmann/json.hpp>
#include <taskhive/loader.hpp>

#include "plugins/temp_dir.hpp"

namespace fs = std::filesystem;

namespace {

// One kind of one sample plugin, loaded from a private copy (the loader refuses group-writable files).
class SampleKind {
 public:
  SampleKind(const std::string& plugin, const std::string& kind) {
    taskhive::test::install(fs::path(TASKHIVE_SAMPLE_PLUGIN_DIR) / (plugin + ".so"), dir_ / (plugin + ".so"));
    auto registry = taskhive::load_plugins({.dirs = {dir_.path()}});
    INFO(registry.error());
    REQUIRE(registry);
    registry_ = std::move(registry).value();
    const taskhive_plugin_descriptor* descriptor = registry_.descriptor(plugin);
    REQUIRE(descriptor != nullptr);
    for (std::size_t i = 0; i < descriptor->kind_count; ++i)
      if (descriptor->kinds[i].name == kind) kind_ = &descriptor->kinds[i];
    REQUIRE(kind_ != nullptr);
  }
  const taskhive_stage_kind& operator*() const { return *kind_; }
  const taskhive_stage_kind* operator->() const { return kind_; }
  const taskhive::test::TempDir& dir() const { return dir_; }

 private:
  taskhive::test::TempDir dir_;
  taskhive::PluginRegistry registry_;
  const taskhive_stage_kind* kind_ = nullptr;
};

// The grep-format output of one process() call: every "PATH:LINE:TEXT" line of every emitted item, in order.
struct Lines {
  std::vector<std::string> lines;

  static int32_t emit(void* self, const taskhive_item* item) {
    std::istringstream text(std::string(reinterpret_cast<const char*>(item->data), item->size));
    for (std::string line; std::getline(text, line);) static_cast<Lines*>(self)->lines.push_back(line);
    return TASKHIVE_OK;
  }
};

class Grep {
 public:
  Grep(const taskhive_stage_kind& kind, const std::string& pattern) : kind_(kind) {
    const taskhive_kv params[] = {{"pattern", pattern.c_str()}, {"format", "grep"}};
    taskhive_error error{};
    REQUIRE(kind_.create(params, 2, &instance_, &error) == TASKHIVE_OK);
  }
  ~Grep() { kind_.destroy(instance_); }
  Grep(const Grep&) = delete;
  Grep& operator=(const Grep&) = delete;

  // Greps `path` as a file item, with metadata "size" = `size` when given.
  std::vector<std::string> run(const std::string& path, const char* size = nullptr) {
    const taskhive_kv metadata[] = {{"path", path.c_str()}, {"size", size}};
    const taskhive_item item{reinterpret_cast<const uint8_t*>(path.data()), path.size(), metadata,
                             size ? 2u : 1u};
    Lines out;
    taskhive_error error{};
    REQUIRE(kind_.process(instance_, &item, &Lines::emit, &out, &error) == TASKHIVE_OK);
    return out.lines;
  }

 private:
  const taskhive_stage_kind& kind_;
  void* instance_ = nullptr;
};

// What grep -n prints for `pattern` taken literally: the reference the plugin is held to.
std::vector<std::string> reference(const std::string& path, const std::string& content,
                                   const std::string& word) {
  std::vector<std::string> lines;
  std::istringstream text(content);
  int number = 0;
  for (std::string line; std::getline(text, line);) {
    ++number;
    if (line.find(word) != std::string::npos)
      lines.push_back(path + ":" + std::to_string(number) + ":" + line);
  }
  return lines;
}

// Lines of every length from 0 to 40, so that the newline count runs over every alignment of its eight-byte
// steps; "needle" on every 7th line, at varying offsets.
std::string sample_text(int lines) {
  std::string text;
  for (int i = 0; i < lines; ++i) {
    std::string line(static_cast<std::size_t>(i % 41), 'a' + i % 26);
    if (i % 7 == 3) line.insert(line.size() / 2, "needle");
    text += line + '\n';
  }
  return text;
}

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

int32_t ignore_emit(void*, const taskhive_item*) {
  return TASKHIVE_OK;
}

// Runs one file item naming `path` through `kind`, created with `params`; returns the item's error ("" if
// none).
std::string process_file_item(const taskhive_stage_kind& kind, const std::vector<taskhive_kv>& params,
                              const std::string& path) {
  void* instance = nullptr;
  taskhive_error error{};
  REQUIRE(kind.create(params.data(), params.size(), &instance, &error) == TASKHIVE_OK);
  const taskhive_kv metadata[] = {{"path", path.c_str()}};
  const taskhive_item item{reinterpret_cast<const uint8_t*>(path.data()), path.size(), metadata, 1};
  const auto status = kind.process(instance, &item, &ignore_emit, nullptr, &error);
  const std::string message = status == TASKHIVE_OK ? "" : std::string(error.message);
  kind.destroy(instance);
  return message;
}

}  // namespace

TEST_CASE("text.grep reads a file to its end whatever size the walk saw", "[samples][text]") {
  const SampleKind kind("text", "grep");
  const std::string path = (kind.dir() / "sample.txt").string();
  // Small (one read) and over text.grep's 256 KiB chunk (several reads, the last one short).
  const int line_count = GENERATE(200, 30000);
  const std::string content = sample_text(line_count);
  write_file(path, content);
  const auto want = reference(path, content, "needle");
  REQUIRE(want.size() > 10);
  const std::string size = std::to_string(content.size());

  Grep plain(*kind, "needle");    // a plain word: memmem
  Grep regex(*kind, "need[l]e");  // the same lines through RE2
  SECTION("the size the file has") {
    CHECK(plain.run(path, size.c_str()) == want);
    CHECK(regex.run(path, size.c_str()) == want);
  }
  SECTION("no size, or one that is not a number") {
    CHECK(plain.run(path) == want);
    CHECK(plain.run(path, "12x") == want);
  }
  SECTION("the file grew after the walk: read to its current end") {
    CHECK(plain.run(path, "10") == want);
    CHECK(regex.run(path, "0") == want);
  }
  SECTION("the file shrank after the walk: read to its end, no error") {
    const std::string larger = std::to_string(content.size() * 2 + 1);
    CHECK(plain.run(path, larger.c_str()) == want);
    CHECK(regex.run(path, larger.c_str()) == want);
  }
}

TEST_CASE("text.grep reads a /proc file, which says size 0 and comes a page per read, to its end",
          "[samples][text]") {
  // /proc/kallsyms: megabytes of kernel symbol lines, stable while the test runs, a "regular file" whose stat
  // says 0 bytes and whose reads stop at a page: a hint taken at its word would end it after the first page.
  const std::string path = "/proc/kallsyms";
  if (!std::ifstream(path)) {
    WARN("no readable /proc/kallsyms here: case skipped");
    return;
  }
  const SampleKind kind("text", "grep");
  Grep plain(*kind, "sys_");
  const auto hinted = plain.run(path, "0");  // what fs.walk says of it
  const auto unhinted = plain.run(path);
  REQUIRE(hinted.size() > 100);
  CHECK(hinted.size() == unhinted.size());
  // Matches far past the first page (a page holds under 100 lines).
  const auto& last = hinted.back();
  const auto number_at = last.find(':') + 1;
  CHECK(std::stoull(last.substr(number_at, last.find(':', number_at) - number_at)) > 10000);
}

TEST_CASE("out.jsonl writes the keys in numbers as JSON numbers only when they are decimal integers",
          "[samples][out]") {
  const SampleKind kind("out", "jsonl");
  const std::string path = (kind.dir() / "out.jsonl").string();
  const taskhive_kv params[] = {{"path", path.c_str()}, {"numbers", "n, m"}};
  void* instance = nullptr;
  taskhive_error error{};
  REQUIRE(kind->create(params, 2, &instance, &error) == TASKHIVE_OK);
  // Numbers: canonical decimal integers within +-(2^53 - 1), which double-based readers keep exact.
  const std::vector<std::string> values = {"0",
                                           "42",
                                           "-7",
                                           "9007199254740991",
                                           "-9007199254740991",
                                           "9007199254740992",
                                           "18446744073709551615",
                                           "007",
                                           "+1",
                                           "1e3",
                                           "-0",
                                           "",
                                           "12 "};
  for (const auto& value : values) {
    const taskhive_kv metadata[] = {{"n", value.c_str()}, {"other", "5"}};
    const taskhive_item item{nullptr, 0, metadata, 2};
    REQUIRE(kind->process(instance, &item, nullptr, nullptr, &error) == TASKHIVE_OK);
  }
  REQUIRE(kind->finish(instance, &error) == TASKHIVE_OK);
  kind->destroy(instance);

  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == values.size());
  CHECK(lines[0]["n"] == 0);
  CHECK(lines[1]["n"] == 42);
  CHECK(lines[2]["n"] == -7);
  CHECK(lines[3]["n"] == 9007199254740991);
  CHECK(lines[4]["n"] == -9007199254740991);
  for (std::size_t i = 5; i < values.size(); ++i) {  // not canonical, or past 2^53 - 1: the string as it was
    INFO(values[i]);
    CHECK(lines[i]["n"] == values[i]);
  }
  for (const auto& line : lines) CHECK(line["other"] == "5");  // not in numbers: a string, as before
}

TEST_CASE("a FIFO in place of a listed file is refused, not waited on", "[samples]") {
  // The walk listed a regular file; by the time a stage opened it, it was a FIFO. open() of a FIFO waits for
  // a writer: text and compress waited for ever (a Ctrl-C too); the test's timeout is the failure then.
  taskhive::test::TempDir work;
  const std::string fifo = (work / "was-a-file.txt").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string out_dir = (work / "out").string();
  struct Case {
    std::string plugin, kind;
    std::vector<taskhive_kv> params;
  };
  const std::vector<Case> cases = {
      {"text", "grep", {{"pattern", "x"}}},
      {"text", "lines", {}},
      {"text", "words", {}},
      {"hash", "file", {}},
      {"compress", "zstd", {{"out_dir", out_dir.c_str()}}},
  };
  for (const auto& c : cases) {
    INFO(c.plugin << "." << c.kind);
    SampleKind kind(c.plugin, c.kind);
    CHECK_THAT(process_file_item(*kind, c.params, fifo),
               Catch::EndsWith("was-a-file.txt is not a regular file"));
  }
}

TEST_CASE("compress.zstd writes an output whose name is a few bytes under NAME_MAX", "[samples][compress]") {
  // Its temporary file was OUTPUT.zst.tmp.PID.N, which passed NAME_MAX (255) before OUTPUT.zst did.
  SampleKind zstd("compress", "zstd");
  taskhive::test::TempDir work;
  const std::string name = std::string(247, 'a') + ".log";  // 251 bytes; with .zst, 255
  fs::create_directories(work / "logs");
  write_file(work / "logs" / name, "a line\n");
  const std::string out_dir = (work / "out").string(), root = (work / "logs").string();
  CHECK(process_file_item(*zstd, {{"out_dir", out_dir.c_str()}, {"root", root.c_str()}},
                          (work / "logs" / name).string()) == "");
  CHECK(fs::is_regular_file(work / "out" / (name + ".zst")));
  CHECK(std::distance(fs::directory_iterator(work / "out"), fs::directory_iterator()) == 1);  // no temp left
}

TEST_CASE("fs.copy copies FIFOs as FIFOs and goes on past an entry it cannot copy", "[samples][fs]") {
  // std::filesystem::copy stopped at a FIFO with "Invalid argument", naming neither it nor what was left.
  SampleKind copy("fs", "copy");
  taskhive::test::TempDir work;
  fs::create_directories(work / "tree" / "d");
  write_file(work / "tree" / "zz", "zz\n");
  write_file(work / "tree" / "d" / "f", "f\n");
  REQUIRE(::mkfifo((work / "tree" / "d" / "zfifo").c_str(), 0600) == 0);
  fs::create_symlink("f", work / "tree" / "d" / "link");
  const std::string from = (work / "tree").string(), to = (work / "snap").string();
  const taskhive_kv params[] = {{"from", from.c_str()}, {"to", to.c_str()}};
  taskhive_error error{};
  REQUIRE(copy->run(params, 2, &error) == TASKHIVE_OK);
  CHECK(fs::is_regular_file(work / "snap" / "zz"));
  CHECK(fs::is_regular_file(work / "snap" / "d" / "f"));
  CHECK(fs::is_fifo(fs::symlink_status(work / "snap" / "d" / "zfifo")));
  CHECK(fs::read_symlink(work / "snap" / "d" / "link") == "f");

  // An entry that cannot be copied (a file where a directory must go) is named; the rest is still copied.
  const std::string to2 = (work / "snap2").string();
  fs::create_directories(work / "snap2");
  write_file(work / "snap2" / "d", "in the way\n");
  const taskhive_kv params2[] = {{"from", from.c_str()}, {"to", to2.c_str()}};
  CHECK(copy->run(params2, 2, &error) != TASKHIVE_OK);
  CHECK_THAT(std::string(error.message),
             Catch::Contains("snap2/d: cannot overwrite a non-directory with a directory"));
  CHECK(fs::is_regular_file(work / "snap2" / "zz"));
}

TEST_CASE("fs.copy never writes through a link in the destination, and copies modes as cp does",
          "[samples][fs]") {
  SampleKind copy("fs", "copy");
  taskhive::test::TempDir work;
  auto run = [&](const fs::path& from, const fs::path& to) {
    const std::string f = from.string(), t = to.string();
    const taskhive_kv params[] = {{"from", f.c_str()}, {"to", t.c_str()}};
    taskhive_error error{};
    return copy->run(params, 2, &error) == TASKHIVE_OK ? std::string() : std::string(error.message);
  };
  fs::create_directories(work / "src" / "d");
  write_file(work / "src" / "d" / "f", "f\n");
  write_file(work / "src" / "g", "g\n");
  // A link in the destination where a directory goes: cp refuses; copying through it wrote outside `to`.
  fs::create_directories(work / "outside");
  fs::create_directories(work / "dst");
  fs::create_directory_symlink("../outside", work / "dst" / "d");
  CHECK_THAT(run(work / "src", work / "dst"),
             Catch::Contains("cannot overwrite a non-directory with a directory"));
  CHECK_FALSE(fs::exists(work / "outside" / "f"));
  // A dangling link where a file goes is replaced by the file, not written through.
  fs::create_directories(work / "dst2");
  fs::create_symlink("../victim", work / "dst2" / "g");
  CHECK(run(work / "src" / "g", work / "dst2" / "g") == "");
  CHECK_FALSE(fs::exists(work / "victim"));
  CHECK(fs::is_regular_file(fs::symlink_status(work / "dst2" / "g")));
  // A file onto itself is refused rather than truncated.
  CHECK_THAT(run(work / "src" / "g", work / "src" / "g"), Catch::Contains("is the same file"));
  CHECK(fs::file_size(work / "src" / "g") == 2);
  // Modes: a new file gets the source's bits without setuid; a read-only source directory is still filled.
  fs::permissions(work / "src" / "g", fs::perms::owner_all | fs::perms::set_uid);
  fs::permissions(work / "src" / "d", fs::perms::owner_read | fs::perms::owner_exec);
  CHECK(run(work / "src", work / "copy") == "");
  CHECK((fs::status(work / "copy" / "g").permissions() & fs::perms::set_uid) == fs::perms::none);
  CHECK(fs::is_regular_file(work / "copy" / "d" / "f"));
  CHECK((fs::status(work / "copy" / "d").permissions() & fs::perms::owner_write) == fs::perms::none);
  fs::permissions(work / "src" / "d", fs::perms::owner_all);
  fs::permissions(work / "copy" / "d", fs::perms::owner_all);  // so the temporary directory can be removed
  // A FIFO where a file goes is refused, not opened (which waits for a reader for ever).
  fs::create_directories(work / "dst3");
  REQUIRE(::mkfifo((work / "dst3" / "g").c_str(), 0600) == 0);
  CHECK_THAT(run(work / "src" / "g", work / "dst3" / "g"), Catch::Contains("not a regular file"));
  // `to` itself, when a link to a directory, is followed: a work directory is often one.
  fs::create_directories(work / "real");
  fs::create_directory_symlink("real", work / "work-link");
  CHECK(run(work / "src" / "g", work / "work-link") == "");
  CHECK(fs::is_regular_file(work / "real" / "g"));
  // A missing source makes nothing of the destination.
  CHECK_THAT(run(work / "nothing", work / "made" / "x"), Catch::Contains("No such file"));
  CHECK_FALSE(fs::exists(work / "made"));
}

TEST_CASE("fs.copy refuses to copy a directory into itself and copies nothing", "[samples][fs]") {
  // Before, it copied the copy as it grew, until the names were too long, and left 456 levels behind.
  SampleKind copy("fs", "copy");
  taskhive::test::TempDir work;
  fs::create_directories(work / "tree" / "sub");
  std::ofstream(work / "tree" / "a.txt") << "a\n";
  for (const std::string& to :
       {(work / "tree" / "snapshot").string(), (work / "tree" / "sub" / "deeper").string(),
        (work / "tree").string(), (work / "tree" / "." / "x").string()}) {
    INFO(to);
    const std::string from = (work / "tree").string();
    const taskhive_kv params[] = {{"from", from.c_str()}, {"to", to.c_str()}};
    taskhive_error error{};
    CHECK(copy->run(params, 2, &error) == TASKHIVE_ERR_INVALID_PARAM);
    CHECK(std::string(error.message).starts_with("cannot copy a directory into itself: "));
  }
  CHECK_FALSE(fs::exists(work / "tree" / "snapshot"));
  CHECK_FALSE(fs::exists(work / "tree" / "sub" / "deeper"));
  // Beside it is fine, even with a name that starts the same.
  const std::string from = (work / "tree").string(), beside = (work / "tree-copy").string();
  const taskhive_kv params[] = {{"from", from.c_str()}, {"to", beside.c_str()}};
  taskhive_error error{};
  CHECK(copy->run(params, 2, &error) == TASKHIVE_OK);
  CHECK(fs::exists(work / "tree-copy" / "a.txt"));
}
