#pragma once
// A live set of plugins: the loader's scan, kept current by rescans (on demand, on an interval, or when
// inotify says a plugin directory changed), handing out leases on loaded plugin versions for hot reload.
//
// @code
//   auto catalog = taskhive::PluginCatalog::open({.loader = {.dirs = {"/opt/app/plugins"}, .probe = true},
//                                                 .watch = true});
//   if (!catalog) return fail(catalog.error());
//   auto upper = (*catalog)->lease("sample_upper");       // loads it on first use
//   if (!upper) return fail(upper.error());
//   run_stage(upper->descriptor());                       // valid while `upper` lives
// @endcode
//
// Hot reload: when a rescan finds a plugin file changed (new bytes: a new device, inode, size or mtime, or a
// new ctime and a new SHA-256; a chmod or a hard link alone is no change), the new version is probed and
// serves every lease taken from then on; leases already held keep the old version loaded, and it is unloaded
// when the last of them ends. Each version is loaded from its own private copy (see LoaderOptions), so glibc
// never hands back the old handle for the new bytes. A removed file stops serving new leases the same way. A
// rescan that fails as a whole (a plugin directory gone) keeps the previous state and says why; the host
// keeps running.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "taskhive/loader.hpp"
#include "taskhive/plugin_abi.h"

namespace taskhive {

namespace detail {
struct PluginVersion;
class CatalogState;
}  // namespace detail

/// A hold on one loaded version of a plugin: the version stays loaded while any lease on it lives. Cheap to
/// copy; thread-safe.
class PluginLease {
 public:
  PluginLease() = default;
  explicit PluginLease(std::shared_ptr<const detail::PluginVersion> version) : version_(std::move(version)) {}

  /// The plugin's descriptor: call its kinds through it while the lease lives.
  const taskhive_plugin_descriptor* descriptor() const noexcept;
  /// The record of this version (name, version, path, sha256, load time).
  const PluginRecord& record() const noexcept;
  explicit operator bool() const noexcept { return version_ != nullptr; }

 private:
  std::shared_ptr<const detail::PluginVersion> version_;
};

struct CatalogOptions {
  LoaderOptions loader{};
  /// Rescan this often (0: only on demand or when watched).
  std::chrono::milliseconds rescan_interval{0};
  /// Rescan when inotify reports a change in a plugin directory.
  bool watch = false;
  /// After a change is seen, wait until the directory has been quiet this long (at most a second), so a
  /// plugin being copied in is scanned once, whole.
  std::chrono::milliseconds settle{50};
};

/// What a rescan found, against the previous scan.
struct RescanSummary {
  std::size_t added = 0;         ///< files not seen before
  std::size_t changed = 0;       ///< files whose key changed: checked, probed (or loaded) again
  std::size_t removed = 0;       ///< files gone
  std::size_t unchanged = 0;     ///< files with the same key: stat only
  std::uint64_t generation = 0;  ///< the catalog's generation after the rescan
};

/// Thread-safe: leases, records and rescans may be called from any thread at once.
class PluginCatalog {
 public:
  /// Scans once (a failure is a configuration error, as for load_plugins) and starts the watcher if asked.
  static LoadResult<std::unique_ptr<PluginCatalog>> open(CatalogOptions options);
  ~PluginCatalog();  ///< stops the watcher; versions still leased stay loaded until their leases end
  PluginCatalog(const PluginCatalog&) = delete;
  PluginCatalog& operator=(const PluginCatalog&) = delete;

  /// Scans the directories again, now. Rescans are serialised; leases are served meanwhile.
  LoadResult<RescanSummary> rescan();

  /// A lease on the current version of the plugin with this name, loading it if it is only available.
  /// Fails for an unknown or refused name, or if the load fails (its record then says why).
  LoadResult<PluginLease> lease(std::string_view name);

  /// Every candidate of the latest scan, in search order.
  std::vector<PluginRecord> records() const;

  /// Counts the rescans since open() that changed something (added, changed or removed files).
  std::uint64_t generation() const noexcept;

  /// Waits until generation() > `seen` or the timeout passes; true if it did. For tools and tests that
  /// react to a watched change.
  bool wait_for_change(std::uint64_t seen, std::chrono::milliseconds timeout) const;

 private:
  explicit PluginCatalog(std::unique_ptr<detail::CatalogState> state);
  std::unique_ptr<detail::CatalogState> state_;
};

}  // namespace taskhive
