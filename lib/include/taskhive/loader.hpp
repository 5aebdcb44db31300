#pragma once
// The plugin loader: finds plugin files in directories, checks them, loads the good ones in-process and
// refuses each bad one with one clear reason, while the others still load and the host keeps running.
//
// @code
//   taskhive::LoaderOptions options{.dirs = taskhive::plugin_dirs_from_env()};
//   options.dirs.push_back("/opt/app/plugins");
//   auto result = taskhive::load_plugins(options);
//   if (!result) return fail(result.error());           // "plugin directory /opt/app/plugins does not exist"
//   for (const auto& p : result->records())
//     if (p.status == taskhive::PluginStatus::refused) warn("{}: {}", p.path, p.reason);
//   const taskhive_plugin_descriptor* upper = result->descriptor("sample_upper");   // call its kinds
// @endcode
//
// The scan is a tbb::flow graph (lib/src/plugins/scan.hpp): a scan node lists the directories, a limiter
// bounds the candidates in flight, parallel prevalidation nodes run the file checks and the hash, a probe
// node (or, without probe, a serial dlopen node) reads the descriptor, and a serial register node settles
// duplicate names in search order.
//
// Checks, in order, each giving its own reason (see PluginRecord::reason): a symlink must stay inside its
// plugin directory, and each subdirectory it leads through must be as trusted as the directory; the file is
// opened with O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC (so a FIFO cannot block the scan) and everything after reads
// that descriptor: a regular file, owned by root or the current user, not writable by group or others (nor is
// its directory), not empty, an ELF shared object for this machine, not truncated, its SHA-256 in the
// allowlist if one is configured; then a private copy of it (a sealed memfd, hashed as it is filled and
// compared with the digest checked) is dlopen'ed, so the bytes loaded are the bytes checked and nothing can
// change them while they run, and its descriptor is validated (entry symbol, non-NULL, ABI version, name,
// semantic version, unique kinds, unique plugin name: the first in search order wins).
//
// With LoaderOptions::probe, every checked file is first loaded in a child process (taskhive-probe, many
// files per child) that reads and validates its descriptor and reports it back; a plugin that crashes, exits
// or hangs there (per-plugin time limit) is refused with that reason, and the host never maps it. The others
// are `available`: the host dlopens one (the same checked descriptor) only on PluginRegistry::load(name).
// Without probe, plugins load in-process at once: a plugin whose constructors crash takes the host down.
//
// Probe cache (LoaderOptions::probe_cache, off by default in the library; the CLI uses
// default_probe_cache_file()): probe outcomes, refusals included, are kept on disk keyed by device, inode,
// size, mtime and ctime (ns), with the SHA-256 alongside. A file whose key matches is neither hashed nor
// probed on a rescan (stat only: the file checks still run, its record and sha256 come from the cache); any
// key field differing means it is hashed and probed again. The ctime, which only the kernel sets, catches a
// file rewritten in place with its mtime restored; when only the ctime differs (a chmod or a hard link moves
// it too) the file is hashed, and the same bytes are not probed again. The hash is then deferred to
// PluginRegistry::load(), which hashes the descriptor it is about to map and refuses the plugin if the bytes
// no longer match the recorded SHA-256 (bytes changed between the scan and the load). With an allowlist, a
// cache hit is checked against the cached SHA-256, and load() verifies it the same way.

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "taskhive/plugin_abi.h"

namespace taskhive {

class Scheduler;

namespace detail {
struct LoadedLibrary;
}

/// Where a candidate file stands: loaded in this process, `available` (probed fine in a child process, not
/// loaded here yet), or refused.
enum class PluginStatus { loaded, available, refused };

/// "loaded", "available" or "refused".
std::string_view to_string(PluginStatus status) noexcept;

/// "source", "transform", "sink", "task" (or "unknown").
std::string_view kind_type_name(std::uint32_t type) noexcept;

/// A parameter a kind declares, copied out of the plugin.
struct PluginParam {
  std::string name;
  std::string type;  ///< "string", "int", "float", "bool"
  bool required = false;
  std::optional<std::string> default_value;
  std::string help;
};

/// A stage kind a plugin provides, copied out of the plugin.
struct PluginKind {
  std::string name;
  std::string type;  ///< kind_type_name()
  std::string description;
  std::vector<PluginParam> params;
};

/// One candidate file and what became of it. Name, version and kinds are known only once the descriptor
/// was read (a plugin refused earlier has them empty).
struct PluginRecord {
  std::filesystem::path path;  ///< as found in its directory (a symlink keeps its own name)
  PluginStatus status = PluginStatus::refused;
  std::string reason;  ///< why it was refused, one line; empty when loaded
  std::string name;
  std::string version;
  std::string description;
  std::vector<PluginKind> kinds;
  std::string sha256;  ///< lowercase hex of the bytes checked; empty if not read
  std::chrono::system_clock::time_point loaded_at{};  ///< when it was loaded; epoch if never
  std::chrono::microseconds load_duration{};          ///< dlopen to validated descriptor
};

/// An outcome that is a value or a message for a person: the loader's expected failures are values, not
/// exceptions.
template <class T>
class [[nodiscard]] LoadResult {
 public:
  LoadResult(T value) : state_(std::move(value)) {}  // NOLINT: implicit on purpose, `return registry;`
  static LoadResult failure(std::string message) { return LoadResult(Failure{std::move(message)}); }

  explicit operator bool() const noexcept { return state_.index() == 0; }
  T& value() & { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &std::get<0>(state_); }
  T& operator*() & { return value(); }
  /// Why it failed; empty on success.
  const std::string& error() const noexcept {
    static const std::string none;
    return state_.index() == 1 ? std::get<1>(state_).message : none;
  }

 private:
  struct Failure {
    std::string message;
  };
  explicit LoadResult(Failure f) : state_(std::move(f)) {}
  std::variant<T, Failure> state_;
};

/// Every candidate the loader saw, in search order, and the libraries of the loaded ones. Move-only: it owns
/// the loaded libraries and unloads them when destroyed, so descriptors from it are valid only while it
/// lives. Not thread-safe for mutation; const access from many threads is fine.
class PluginRegistry {
 public:
  PluginRegistry();
  ~PluginRegistry();
  PluginRegistry(PluginRegistry&&) noexcept;
  PluginRegistry& operator=(PluginRegistry&&) noexcept;
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;

  const std::vector<PluginRecord>& records() const noexcept { return records_; }

  /// The record of the loaded or available plugin with this name, or nullptr.
  const PluginRecord* find(std::string_view name) const noexcept;

  /// Loads the available (probed) plugin with this name into this process, from the descriptor that was
  /// checked and probed, and returns its descriptor; a loaded one is returned as is. Fails for an unknown or
  /// refused name, or if dlopen or the descriptor now fails (the record then becomes refused). It first
  /// hashes the open file and refuses it if the bytes differ from the record's SHA-256 (the one probed or
  /// cached).
  LoadResult<const taskhive_plugin_descriptor*> load(std::string_view name);

  /// The descriptor of the loaded plugin with this name, or nullptr. Valid while this registry lives.
  const taskhive_plugin_descriptor* descriptor(std::string_view name) const noexcept;

  /// Adds a record; a loaded one keeps `library` open until the registry is destroyed, an available one keeps
  /// its checked file open for load().
  void add(PluginRecord record, std::unique_ptr<detail::LoadedLibrary> library = nullptr);

 private:
  std::vector<PluginRecord> records_;
  std::vector<std::pair<std::string, std::unique_ptr<detail::LoadedLibrary>>> libraries_;  // name -> library
};

/// What to load.
struct LoaderOptions {
  /// Directories in search order; earlier ones win name clashes. Relative paths are made absolute against the
  /// current directory at the call; the current directory itself is never searched unless listed.
  std::vector<std::filesystem::path> dirs{};
  /// A file of lines "SHA256 NAME" (sha256sum's format; '#' starts a comment). When set, only files whose
  /// digest it lists are loaded; NAME is for people and is not checked.
  std::optional<std::filesystem::path> allowlist{};
  /// Probe before load: run each checked plugin's constructors and entry function in a child process and
  /// leave the good ones `available` instead of loading them here (see PluginRegistry::load). Off: load every
  /// good plugin in this process at once, as before.
  bool probe = false;
  /// How long one plugin may take in the probe (dlopen, constructors, entry, validation) before it is killed
  /// and refused ("probe timed out after 5 s").
  std::chrono::milliseconds probe_timeout{5000};
  /// The probe executable; unset: $TASKHIVE_PROBE, else taskhive-probe next to the running executable, else
  /// the one built with this library, else the installed one.
  std::optional<std::filesystem::path> probe_executable{};
  /// The probe cache file (used only with `probe`); unset: no cache. Read at the start, rewritten atomically
  /// when anything changed; a corrupt or other-version file is ignored with a warning and rebuilt, and a
  /// write failure is a warning. See default_probe_cache_file().
  std::optional<std::filesystem::path> probe_cache{};
  /// Run the scan as a task on this scheduler (the graph then runs in its arena), at `scan_priority`, ahead
  /// of ordinary work; null: in the calling thread. load_plugins waits for the task, so do not call it with
  /// a scheduler from one of that scheduler's own tasks.
  Scheduler* scheduler = nullptr;
  int scan_priority = 5;
};

/// $XDG_CACHE_HOME/taskhive/probe-cache.json, else $HOME/.cache/taskhive/probe-cache.json (absolute values
/// only), else nothing.
std::optional<std::filesystem::path> default_probe_cache_file();

/// The directories in TASKHIVE_PLUGIN_PATH (colon-separated; empty entries skipped), or none.
std::vector<std::filesystem::path> plugin_dirs_from_env();

/// Loads every candidate (each entry named *.so, hidden files skipped) of every directory, in directory order
/// and entry-name order. Fails as a whole only for a configuration error: a directory that does not exist or
/// is not a directory, or an unreadable or malformed allowlist; refused plugins are records, not failures.
LoadResult<PluginRegistry> load_plugins(const LoaderOptions& options);

}  // namespace taskhive
