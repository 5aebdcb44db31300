#pragma once
// The scan graph (issue 4): plugin directories -> candidate files -> checks -> probe or load -> registration,
// as a tbb::flow graph.
//
//   scan (input_node: lists each directory in turn, entries in name order)
//     -> limiter_node (at most kScanInFlight candidates between scan and registration)
//     -> prevalidate (function_node, unlimited: directory trust, open, stat, permissions, ELF header; then
//        "unchanged since the last scan?" and the probe cache, else SHA-256 and the allowlist)
//     -> probe (function_node, one per probe child: descriptor read in a child process)
//        or dlopen (function_node, serial: glibc holds one loader lock across dlopen and constructors, so a
//        parallel dlopen gains nothing)
//     -> sequencer_node (back into search order)
//     -> register (function_node, serial: duplicate names, first in search order wins; decrements the
//     limiter)
//
// Everything that can be refused is refused with one reason in the candidate's record; the graph itself fails
// only on something like memory exhaustion.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "file_checks.hpp"
#include "library.hpp"
#include "probe.hpp"
#include "probe_cache.hpp"
#include "taskhive/loader.hpp"

namespace taskhive::detail {

/// How many candidates may be between the scan node and registration at once: bounds open descriptors and
/// memory on a directory of thousands of files, while keeping both cores busy.
inline constexpr std::size_t kScanInFlight = 64;

/// The digests an allowlist file admits.
struct Allowlist {
  std::filesystem::path path;
  std::set<std::string> digests;
};

/// Reads an allowlist ("SHA256 NAME" per line, sha256sum's format; '#' comments).
LoadResult<Allowlist> read_allowlist(const std::filesystem::path& path);

/// Absolute, canonical, de-duplicated directories in order; fails for one that does not exist or is not a
/// directory.
LoadResult<std::vector<std::filesystem::path>> resolve_dirs(const std::vector<std::filesystem::path>& dirs);

/// What a scan knew of a file the last time, to skip it when unchanged (PluginCatalog's rescans).
struct KnownFile {
  ProbeCacheKey key;
  PluginRecord record;  ///< its outcome before the duplicate-name check: available, loaded or refused
};

struct ScanOptions {
  std::vector<std::filesystem::path> dirs;  ///< resolved (resolve_dirs)
  const Allowlist* allowlist = nullptr;
  /// Probe with these sessions; null: load in-process in the dlopen node.
  ProbePool* probes = nullptr;
  std::size_t probe_concurrency = 1;
  /// Read by prevalidate (in parallel); the caller applies ScanResult::cache_update afterwards.
  const ProbeCache* cache = nullptr;
  std::chrono::milliseconds probe_timeout{5000};
  /// The outcome this file had when last scanned if its key is still the same, or null: then nothing more is
  /// done with it (no hash, no probe, no load). Called in parallel.
  std::function<const KnownFile*(const std::filesystem::path&)> known;
};

/// One candidate file and what became of it, in search order.
struct ScanResult {
  PluginRecord record;
  std::optional<ProbeCacheKey> key;  ///< of the checked file
  bool unchanged = false;            ///< ScanOptions::known matched: record is the known outcome
  const ProbeCacheEntry* cache_hit = nullptr;
  std::optional<ProbeCacheEntry> cache_update;  ///< a fresh probe outcome to store in the probe cache
  std::optional<CheckedFile> file;         ///< an available plugin's checked file, kept for its later load
  std::unique_ptr<LoadedLibrary> library;  ///< without probe: the loaded library
  PluginRecord undeduplicated;             ///< the outcome before the duplicate-name check (for KnownFile)
};

/// Marks the scan's cache hits as current and stores its fresh probe outcomes (in that order: storing moves
/// entries, which the hits point to).
void apply_to_cache(ProbeCache& cache, std::vector<ScanResult>& results);

/// Runs the scan graph in the calling thread's task arena and waits for it.
std::vector<ScanResult> scan_plugins(const ScanOptions& options);

/// Runs `scan` as LoaderOptions asks: in the calling thread, or as a task of priority `scan_priority` on
/// its scheduler (waited for). Returns an error message if the task did not succeed.
std::optional<std::string> run_scan(const LoaderOptions& options, const std::function<void()>& scan);

/// How many probe children a scan uses.
std::size_t probe_concurrency();

}  // namespace taskhive::detail
