// The loader refuses each bad plugin with one clear reason, and the good ones still load next to them.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include <elf.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <taskhive/loader.hpp>

#include "plugins/temp_dir.hpp"

namespace fs = std::filesystem;
using taskhive::PluginStatus;
using taskhive::test::install;
using taskhive::test::TempDir;

namespace {

const fs::path corpus_dir = TASKHIVE_CORPUS_DIR;
const fs::path sample_dir = TASKHIVE_SAMPLE_PLUGIN_DIR;

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_all(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  fs::permissions(path, fs::perms(0755));
}

std::map<std::string, taskhive::PluginRecord> by_file_name(const taskhive::PluginRegistry& registry) {
  std::map<std::string, taskhive::PluginRecord> out;
  for (const auto& record : registry.records()) out.emplace(record.path.filename().string(), record);
  return out;
}

taskhive::PluginRegistry load(std::vector<fs::path> dirs) {
  auto result = taskhive::load_plugins({.dirs = std::move(dirs)});
  INFO(result.error());
  REQUIRE(result);
  return std::move(result).value();
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

}  // namespace

TEST_CASE("each corpus plugin is refused with its own reason while the good one loads", "[plugins][loader]") {
  TempDir dir;
  for (const auto& entry : fs::directory_iterator(corpus_dir))
    if (entry.path().extension() == ".so") install(entry.path(), dir / entry.path().filename().string());

  auto registry = load({dir.path()});
  auto records = by_file_name(registry);
  REQUIRE(records.size() == 9);
  auto reason = [&](const std::string& file) {
    const auto& record = records.at(file);
    CHECK(record.status == PluginStatus::refused);
    CHECK(record.sha256.size() == 64);  // every one of these got as far as being hashed
    return record.reason;
  };

  SECTION("the good plugin loads, with its descriptor copied into the registry") {
    const auto& good = records.at("good.so");
    CHECK(good.status == PluginStatus::loaded);
    CHECK(good.reason.empty());
    CHECK(good.name == "corpus_good");
    CHECK(good.version == "2.1.0-rc.1+build.5");
    REQUIRE(good.kinds.size() == 1);
    CHECK(good.kinds[0].name == "echo");
    CHECK(good.kinds[0].type == "transform");
    CHECK(good.loaded_at.time_since_epoch().count() > 0);
    CHECK(registry.find("corpus_good") == &registry.records()[3]);  // records keep name order
    CHECK(registry.descriptor("corpus_good") != nullptr);
  }
  SECTION("no entry symbol") {
    CHECK(starts_with(reason("no_entry.so"), "no taskhive_plugin_entry symbol: not a taskhive plugin"));
  }
  SECTION("the entry returns NULL") {
    CHECK(reason("entry_null.so") == "taskhive_plugin_entry returned NULL");
  }
  SECTION("ABI version mismatch names both versions") {
    CHECK(starts_with(reason("wrong_abi.so"), "ABI version mismatch: expected 1, found 99"));
  }
  SECTION("malformed descriptor: missing name") {
    CHECK(reason("missing_name.so") == "malformed descriptor: missing name");
  }
  SECTION("malformed descriptor: bad semantic version") {
    CHECK(starts_with(reason("bad_semver.so"),
                      "malformed descriptor: version \"1.0\" is not a semantic version"));
  }
  SECTION("malformed descriptor: duplicate kind") {
    CHECK(reason("duplicate_kind.so") == "malformed descriptor: duplicate kind \"pass\"");
  }
  SECTION("duplicate plugin name: the first in name order wins and the loser names it") {
    CHECK(reason("zz_duplicate_name.so") ==
          "duplicate plugin name \"corpus_good\": already loaded from " + (dir / "good.so").string());
    CHECK(records.at("zz_duplicate_name.so").name == "corpus_good");
  }
  SECTION("dlopen failure carries dlerror's text, with the file's path rather than /proc/self/fd") {
    const auto text = reason("undefined_symbol.so");
    CHECK(starts_with(text, "dlopen failed: "));
    CHECK(text.find("undefined symbol: taskhive_corpus_symbol_defined_nowhere") != std::string::npos);
    CHECK(text.find((dir / "undefined_symbol.so").string()) != std::string::npos);
    CHECK(text.find("/proc/self/fd") == std::string::npos);
  }
}

TEST_CASE("files that are not plugins are refused before any of their code runs", "[plugins][loader]") {
  TempDir dir;
  TempDir outside;
  const auto good = install(corpus_dir / "good.so", dir / "a_good.so");
  const std::string elf = read_all(good);
  REQUIRE(elf.size() > sizeof(Elf64_Ehdr));

  write_all(dir / "empty.so", "");
  REQUIRE(mkfifo((dir / "fifo.so").c_str(), 0755) ==
          0);  // opening it for reading would block without O_NONBLOCK
  fs::create_directory(dir / "directory.so");
  write_all(dir / "text.so", "#!/bin/sh\necho not a plugin\n");
  write_all(dir / "truncated.so", elf.substr(0, elf.size() / 2));
  write_all(dir / "tiny_elf.so", elf.substr(0, 20));
  write_all(dir / "magic_only.so", elf.substr(0, 7));
  // The plugin with a 64 MiB hole after it: sparse, so it costs no disk, but it would be hashed whole.
  install(good, dir / "padded.so");
  fs::resize_file(dir / "padded.so", elf.size() + (64u << 20));
  std::string arm = elf;
  arm[offsetof(Elf64_Ehdr, e_machine)] = static_cast<char>(EM_AARCH64);
  arm[offsetof(Elf64_Ehdr, e_machine) + 1] = 0;
  write_all(dir / "wrong_arch.so", arm);
  std::string elf32 = elf;
  elf32[EI_CLASS] = ELFCLASS32;
  write_all(dir / "elf32.so", elf32);
  std::string object = elf;
  object[offsetof(Elf64_Ehdr, e_type)] = ET_REL;
  write_all(dir / "object.so", object);
  install(good, dir / "writable.so");
  fs::permissions(dir / "writable.so", fs::perms(0775));
  install(good, outside / "outside.so");
  fs::create_symlink(outside / "outside.so", dir / "escape.so");
  fs::create_symlink("a_good.so", dir / "inside_link.so");
  fs::create_symlink("missing_target", dir / "broken_link.so");
  write_all(dir / "not_a_candidate.txt", "ignored: not named *.so");
  write_all(dir / ".hidden.so", "ignored: hidden");

  auto registry = load({dir.path()});
  auto records = by_file_name(registry);
  CHECK(records.size() == 16);
  CHECK(records.count("not_a_candidate.txt") == 0);
  CHECK(records.count(".hidden.so") == 0);
  auto reason = [&](const std::string& file) {
    CHECK(records.at(file).status == PluginStatus::refused);
    return records.at(file).reason;
  };

  CHECK(records.at("a_good.so").status == PluginStatus::loaded);
  CHECK(reason("empty.so") == "empty file");
  CHECK(reason("fifo.so") == "not a regular file (FIFO)");
  CHECK(reason("directory.so") == "not a regular file (directory)");
  CHECK(reason("text.so") == "not an ELF file (no ELF magic number at its start)");
  CHECK(starts_with(reason("truncated.so"), "truncated: its ELF headers need at least "));
  CHECK(starts_with(reason("tiny_elf.so"), "truncated: "));
  CHECK(reason("magic_only.so") == "truncated: its ELF headers need at least 16 bytes, the file has 7");
  CHECK(reason("padded.so") == std::to_string(64u << 20) + " bytes past the end of its ELF contents (" +
                                   std::to_string(elf.size()) +
                                   " bytes); a padded or sparse file is refused, not read whole");
  CHECK(reason("wrong_arch.so") == "wrong architecture: built for AArch64, this host is x86-64");
  CHECK(starts_with(reason("elf32.so"), "wrong architecture: a 32-bit little-endian ELF file"));
  CHECK(reason("object.so") == "not an ELF shared object: the file is a relocatable object (.o)");
  CHECK(reason("writable.so") == "writable by group or others (mode 0775); fix with chmod go-w");
  CHECK(reason("escape.so") == "symlink leads outside its plugin directory (to " +
                                   fs::canonical(outside / "outside.so").string() + ")");
  CHECK(starts_with(reason("broken_link.so"), "broken symlink: "));
  // A symlink inside the directory is followed: this one passes every file check and is refused only because
  // it is the same plugin again.
  CHECK(reason("inside_link.so") ==
        "duplicate plugin name \"corpus_good\": already loaded from " + (dir / "a_good.so").string());
  // Nothing after the first failing check ran: no digest for files refused before hashing.
  CHECK(records.at("fifo.so").sha256.empty());
  CHECK(records.at("escape.so").sha256.empty());
}

TEST_CASE("a symlink into a subdirectory others may write is refused; into a safe one it loads",
          "[plugins][loader]") {
  TempDir dir;
  const fs::path good = corpus_dir / "good.so";
  fs::create_directories(dir / "open");
  install(good, dir / "open" / "inner.so");
  fs::permissions(dir / "open", fs::perms(0777));
  fs::create_symlink("open/inner.so", dir / "via_open.so");
  fs::create_directories(dir / "releases" / "1.0");
  install(good, dir / "releases" / "1.0" / "good.so");
  fs::create_symlink("releases/1.0/good.so", dir / "current.so");

  auto records = by_file_name(load({dir.path()}));
  REQUIRE(records.size() == 2);
  CHECK(records.at("via_open.so").status == PluginStatus::refused);
  CHECK(records.at("via_open.so").reason ==
        "its symlink leads through open/, which is writable by group or others (mode 0777); fix with chmod "
        "go-w");
  CHECK(records.at("current.so").status == PluginStatus::loaded);

  // One level deeper: every directory on the way is checked, not only the first.
  fs::permissions(dir / "releases" / "1.0", fs::perms(0757));
  records = by_file_name(load({dir.path()}));
  CHECK(records.at("current.so").reason ==
        "its symlink leads through releases/1.0/, which is writable by group or others (mode 0757); fix with "
        "chmod go-w");
}

TEST_CASE("a file owned by another non-root user is refused", "[plugins][loader]") {
  if (geteuid() != 0) {
    WARN("skipped: only root can give a file to another user");
    return;
  }
  TempDir dir;
  install(corpus_dir / "good.so", dir / "foreign.so");
  REQUIRE(chown((dir / "foreign.so").c_str(), 12345, 12345) == 0);
  auto records = by_file_name(load({dir.path()}));
  CHECK(records.at("foreign.so").status == PluginStatus::refused);
  CHECK(records.at("foreign.so").reason ==
        "owned by another user (uid 12345); plugins must belong to root or to uid 0");
}

TEST_CASE("every file of a plugin directory writable by group or others is refused", "[plugins][loader]") {
  TempDir dir;
  install(corpus_dir / "good.so", dir / "good.so");
  fs::permissions(dir.path(), fs::perms(0777));
  auto records = by_file_name(load({dir.path()}));
  CHECK(records.at("good.so").status == PluginStatus::refused);
  CHECK(records.at("good.so").reason ==
        "plugin directory writable by group or others (mode 0777); fix with chmod go-w");
}

TEST_CASE("the first directory in search order wins a name clash", "[plugins][loader]") {
  TempDir first;
  TempDir second;
  install(sample_dir / "sample_upper.so", first / "upper.so");
  install(sample_dir / "sample_upper.so", second / "a_upper.so");  // sorts first, but its directory is later
  auto registry = load({first.path(), second.path()});
  REQUIRE(registry.records().size() == 2);
  CHECK(registry.records()[0].status == PluginStatus::loaded);
  CHECK(registry.records()[0].path == first / "upper.so");
  CHECK(registry.records()[1].reason ==
        "duplicate plugin name \"sample_upper\": already loaded from " + (first / "upper.so").string());
  CHECK(registry.find("sample_upper")->path == first / "upper.so");
}

TEST_CASE("with an allowlist, only files whose digest it lists load", "[plugins][loader]") {
  TempDir dir;
  install(corpus_dir / "good.so", dir / "good.so");
  install(sample_dir / "sample_upper.so", dir / "sample_upper.so");
  const auto digests = by_file_name(load({dir.path()}));
  const std::string good_digest = digests.at("good.so").sha256;
  REQUIRE(good_digest.size() == 64);

  TempDir config;
  SECTION("a listed digest loads, an unlisted one is refused with its digest and the allowlist's path") {
    write_all(config / "allow", "# plugins we reviewed\n" + good_digest + "  good.so\n\n");
    auto result = taskhive::load_plugins({.dirs = {dir.path()}, .allowlist = config / "allow"});
    REQUIRE(result);
    auto records = by_file_name(*result);
    CHECK(records.at("good.so").status == PluginStatus::loaded);
    CHECK(records.at("sample_upper.so").reason == "sha256 " + digests.at("sample_upper.so").sha256 +
                                                      " is not in the allowlist " +
                                                      (config / "allow").string());
  }
  SECTION("a malformed allowlist fails the whole load, naming file and line") {
    write_all(config / "allow", good_digest + "  good.so\nnot-a-digest good.so\n");
    auto result = taskhive::load_plugins({.dirs = {dir.path()}, .allowlist = config / "allow"});
    REQUIRE_FALSE(result);
    CHECK(starts_with(result.error(), (config / "allow").string() + ":2:1: error: expected \"SHA256 NAME\""));
  }
  SECTION("a missing allowlist fails the whole load") {
    auto result = taskhive::load_plugins({.dirs = {dir.path()}, .allowlist = config / "nonexistent"});
    REQUIRE_FALSE(result);
    CHECK(starts_with(result.error(), "cannot read the plugin allowlist "));
  }
}

TEST_CASE("a plugin directory that does not exist fails the whole load", "[plugins][loader]") {
  TempDir dir;
  auto result = taskhive::load_plugins({.dirs = {dir / "nonexistent"}});
  REQUIRE_FALSE(result);
  CHECK(result.error() == "plugin directory " + (dir / "nonexistent").string() + " does not exist");

  write_all(dir / "file", "x");
  auto not_dir = taskhive::load_plugins({.dirs = {dir / "file"}});
  REQUIRE_FALSE(not_dir);
  CHECK(not_dir.error() == "plugin directory " + (dir / "file").string() + " is not a directory");
}

TEST_CASE("TASKHIVE_PLUGIN_PATH gives absolute directories, skipping empty and relative entries",
          "[plugins][loader]") {
  const char* saved = std::getenv("TASKHIVE_PLUGIN_PATH");
  const std::string restore = saved ? saved : "";
  setenv("TASKHIVE_PLUGIN_PATH", "/a/b::relative/dir:/c:", 1);
  const auto dirs = taskhive::plugin_dirs_from_env();
  if (saved)
    setenv("TASKHIVE_PLUGIN_PATH", restore.c_str(), 1);
  else
    unsetenv("TASKHIVE_PLUGIN_PATH");
  CHECK(dirs == std::vector<fs::path>{"/a/b", "/c"});
}

TEST_CASE("relative directories are resolved to absolute ones", "[plugins][loader]") {
  TempDir dir;
  install(corpus_dir / "good.so", dir / "good.so");
  const auto cwd = fs::current_path();
  fs::current_path(dir.path().parent_path());
  auto result = taskhive::load_plugins({.dirs = {dir.path().filename()}});
  fs::current_path(cwd);
  REQUIRE(result);
  REQUIRE(result->records().size() == 1);
  CHECK(result->records()[0].path == fs::canonical(dir.path()) / "good.so");
  CHECK(result->records()[0].path.is_absolute());
}

TEST_CASE("a registry unloads its plugins when destroyed, refused ones at once", "[plugins][loader]") {
  TempDir dir;
  install(corpus_dir / "good.so", dir / "good.so");
  install(corpus_dir / "wrong_abi.so", dir / "wrong_abi.so");
  auto mapped = [](const std::string& file) { return taskhive::test::plugin_mapped(file + "@"); };
  {
    auto registry = load({dir.path()});
    REQUIRE(registry.find("corpus_good") != nullptr);
    CHECK(mapped("good.so"));
    CHECK_FALSE(mapped("wrong_abi.so"));  // refused after dlopen, and dlclose'd right away (-fno-gnu-unique)
  }
  CHECK_FALSE(mapped("good.so"));
}

TEST_CASE("sockets and devices are not regular files", "[plugins][loader]") {
  TempDir dir;
  const auto socket_path = (dir / "socket.so").string();
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  REQUIRE(socket_path.size() < sizeof address.sun_path);
  socket_path.copy(address.sun_path, socket_path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  REQUIRE(bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  const bool root = geteuid() == 0;
  if (root) REQUIRE(mknod((dir / "null.so").c_str(), S_IFCHR | 0644, makedev(1, 3)) == 0);  // like /dev/null

  auto records = by_file_name(load({dir.path()}));
  close(fd);
  CHECK(records.at("socket.so").reason == "not a regular file (socket)");
  if (root) CHECK(records.at("null.so").reason == "not a regular file (character device)");
}
