#include "probe_cache.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kind_json.hpp"
#include "taskhive/logging.hpp"
#include "taskhive/plugin_abi.h"

namespace taskhive {

namespace detail {

namespace {

constexpr int cache_version = 2;  // 2: the key has the ctime
constexpr std::string_view cache_format = "taskhive-probe-cache";
constexpr std::string_view timeout_prefix = "probe timed out";

using nlohmann::json;

json entry_to_json(const ProbeCacheEntry& e) {
  const PluginRecord& r = e.record;
  json out = {{"path", r.path.string()},
              {"dev", e.key.dev},
              {"ino", e.key.ino},
              {"size", e.key.size},
              {"mtime_ns", e.key.mtime_ns},
              {"ctime_ns", e.key.ctime_ns},
              {"sha256", r.sha256},
              {"probe_timeout_ms", e.probe_timeout.count()},
              {"status", std::string(to_string(r.status))}};
  if (r.status == PluginStatus::refused) {
    out["reason"] = r.reason;
  } else {
    out["name"] = r.name;
    out["version"] = r.version;
    out["description"] = r.description;
    out["kinds"] = kinds_to_json(r.kinds);
  }
  return out;
}

ProbeCacheEntry entry_from_json(const json& in) {
  ProbeCacheEntry e;
  e.key = {in.at("dev").get<std::uint64_t>(), in.at("ino").get<std::uint64_t>(),
           in.at("size").get<std::int64_t>(), in.at("mtime_ns").get<std::int64_t>(),
           in.at("ctime_ns").get<std::int64_t>()};
  e.probe_timeout = std::chrono::milliseconds(in.at("probe_timeout_ms").get<std::int64_t>());
  PluginRecord& r = e.record;
  r.path = in.at("path").get<std::string>();
  r.sha256 = in.at("sha256").get<std::string>();
  const auto status = in.at("status").get<std::string>();
  if (status == "refused") {
    r.status = PluginStatus::refused;
    r.reason = in.at("reason").get<std::string>();
  } else if (status == "available") {
    r.status = PluginStatus::available;
    r.name = in.at("name").get<std::string>();
    r.version = in.at("version").get<std::string>();
    r.description = in.at("description").get<std::string>();
    r.kinds = kinds_from_json(in.at("kinds"));
  } else {
    throw std::runtime_error(fmt::format("unknown status \"{}\"", status));
  }
  return e;
}

bool write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

ProbeCacheKey probe_cache_key(const struct stat& st) noexcept {
  return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
          static_cast<std::int64_t>(st.st_size),
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
          static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec};
}

ProbeCache::ProbeCache(std::filesystem::path file) : file_(std::move(file)) {
  std::ifstream in(file_, std::ios::binary);
  if (!in) {
    dirty_ = true;  // missing (or unreadable): written afresh
    return;
  }
  try {
    const json doc = json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
    if (!doc.is_object() || doc.value("format", std::string()) != cache_format)
      throw std::runtime_error("not a taskhive probe cache");
    const auto version = doc.at("version").get<int>();
    if (version == 1) {  // written by an older taskhive, whose keys lack the ctime: nothing wrong with it
      logger()->info("probe cache {} is from an older taskhive; probing again", file_.string());
      dirty_ = true;
      return;
    }
    if (version != cache_version)
      throw std::runtime_error(fmt::format("unknown version {} (expected {})", version, cache_version));
    if (doc.at("abi_version").get<std::uint32_t>() != TASKHIVE_PLUGIN_ABI_VERSION) {
      logger()->info("probe cache {} is for another plugin ABI version; probing again", file_.string());
      dirty_ = true;
      return;
    }
    for (const auto& e : doc.at("entries")) entries_.push_back(entry_from_json(e));
  } catch (const std::exception& e) {
    logger()->warn("ignoring the probe cache {}: {}; it will be rebuilt", file_.string(), e.what());
    entries_.clear();
    dirty_ = true;
  }
  used_.assign(entries_.size(), false);
}

const ProbeCacheEntry* ProbeCache::find(const std::filesystem::path& path, const ProbeCacheKey& key,
                                        std::chrono::milliseconds timeout) const {
  for (const auto& e : entries_) {
    if (!e.key.same_but_ctime(key) || e.record.path != path) continue;
    if (e.record.status == PluginStatus::refused && e.record.reason.starts_with(timeout_prefix) &&
        timeout > e.probe_timeout)
      return nullptr;  // it might finish within the longer limit
    return &e;
  }
  return nullptr;
}

void ProbeCache::keep(const ProbeCacheEntry* entry, const ProbeCacheKey& key) {
  const auto i = static_cast<std::size_t>(entry - entries_.data());
  used_[i] = true;
  if (entries_[i].key != key) {
    entries_[i].key = key;
    dirty_ = true;
  }
}

void ProbeCache::put(ProbeCacheEntry entry) {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].record.path == entry.record.path) {
      entries_[i] = std::move(entry);
      used_[i] = true;
      dirty_ = true;
      return;
    }
  }
  entries_.push_back(std::move(entry));
  used_.push_back(true);
  dirty_ = true;
}

void ProbeCache::save() {
  json entries = json::array();
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (!used_[i]) {
      // Not seen in this scan (another directory, or gone): kept only while its file is unchanged.
      struct stat st {};
      if (::stat(entries_[i].record.path.c_str(), &st) != 0 || probe_cache_key(st) != entries_[i].key) {
        dirty_ = true;
        continue;
      }
    }
    entries.push_back(entry_to_json(entries_[i]));
  }
  if (!dirty_) return;
  const json doc = {{"format", cache_format},
                    {"version", cache_version},
                    {"abi_version", TASKHIVE_PLUGIN_ABI_VERSION},
                    {"entries", std::move(entries)}};
  // A file name need not be UTF-8, and the JSON library refuses (throws on) bytes that are not: such
  // characters become U+FFFD, so that entry's path matches no file and its plugin is probed again next time.
  const std::string text = doc.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";

  const auto fail = [&](const char* what) {
    logger()->warn("cannot write the probe cache {}: {}: {}", file_.string(), what, std::strerror(errno));
  };
  std::error_code ec;
  const auto dir = file_.parent_path().empty() ? std::filesystem::path(".") : file_.parent_path();
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    errno = ec.value();
    return fail("cannot create its directory");
  }
  std::string temp = (dir / ("." + file_.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return fail("cannot create a temporary file");
  const bool written = write_all(fd, text) && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!written || ::rename(temp.c_str(), file_.c_str()) != 0) {
    if (written) errno = saved;
    const int err = errno;
    ::unlink(temp.c_str());
    errno = err;
    return fail(written ? "cannot rename the temporary file" : "cannot write the temporary file");
  }
  // The rename itself survives a crash once the directory is synced.
  if (const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
  dirty_ = false;
}

}  // namespace detail

std::optional<std::filesystem::path> default_probe_cache_file() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && xdg[0] == '/')
    return std::filesystem::path(xdg) / "taskhive" / "probe-cache.json";
  if (const char* home = std::getenv("HOME"); home && home[0] == '/')
    return std::filesystem::path(home) / ".cache" / "taskhive" / "probe-cache.json";
  return std::nullopt;
}

}  // namespace taskhive
