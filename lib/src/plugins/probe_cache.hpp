#pragma once
// The probe cache (issue 4): probe results on disk, keyed by the file's device, inode, size, mtime and ctime
// (ns), with its SHA-256 stored alongside, so a rescan of unchanged files needs a stat, not a hash and a
// probe. The ctime is what catches bytes rewritten in place behind a restored mtime (touch -d, cp -p, a build
// tool that sets mtimes): only the kernel sets it, to the time of the last change to the file. It also moves
// on a chmod or a hard link, so a key that differs only there is settled by the SHA-256 (see scan.cpp).
//
// Format: one JSON object {"format": "taskhive-probe-cache", "version": 2, "abi_version": N, "entries":
// [...]}; each entry holds the key, the path (to drop entries of files that no longer exist), the SHA-256,
// the probe time limit, and the probe's outcome: "available" with name, version, description and kinds, or
// "refused" with the probe's reason (crash, exit, timeout, dlopen or descriptor problem). An unreadable,
// corrupt or other-version file is ignored with a warning and rebuilt. Written atomically: a temp file in the
// same directory, fsync, rename.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "taskhive/loader.hpp"

namespace taskhive::detail {

/// What identifies an unchanged file: equal keys mean the same bytes. A key that differs only in the ctime
/// may still be the same bytes (a chmod, a hard link made or removed, an extended attribute set): the scan
/// then hashes the file and compares digests rather than probing it again.
struct ProbeCacheKey {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::int64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  friend bool operator==(const ProbeCacheKey&, const ProbeCacheKey&) = default;
  bool same_but_ctime(const ProbeCacheKey& other) const noexcept {
    return dev == other.dev && ino == other.ino && size == other.size && mtime_ns == other.mtime_ns;
  }
};

ProbeCacheKey probe_cache_key(const struct stat& st) noexcept;

/// One cached probe outcome: the record's path, status (available or refused), reason, name, version,
/// description, kinds and sha256.
struct ProbeCacheEntry {
  ProbeCacheKey key;
  PluginRecord record;
  std::chrono::milliseconds probe_timeout{};
};

class ProbeCache {
 public:
  /// Reads `file`; a missing file is an empty cache, a corrupt or other-version one is an empty cache and a
  /// warning (and is rewritten by save()).
  explicit ProbeCache(std::filesystem::path file);

  /// The cached outcome for this path and a key equal to `key` but perhaps for its ctime (the caller tells
  /// whether the bytes are the same then), or nullptr. A timeout refusal recorded under a shorter time limit
  /// than `timeout` is not a hit.
  const ProbeCacheEntry* find(const std::filesystem::path& path, const ProbeCacheKey& key,
                              std::chrono::milliseconds timeout) const;
  /// Marks a hit as still current, under the key its file has now.
  void keep(const ProbeCacheEntry* entry, const ProbeCacheKey& key);
  /// Records a fresh probe outcome (replacing any entry of that path).
  void put(ProbeCacheEntry entry);

  /// Writes the cache if it changed: fresh outcomes, kept hits, and the other entries whose file still exists
  /// with the same key (entries of files that no longer exist are dropped). A failure is a warning.
  void save();

 private:
  std::filesystem::path file_;
  std::vector<ProbeCacheEntry> entries_;
  std::vector<bool> used_;
  bool dirty_ = false;
};

}  // namespace taskhive::detail
