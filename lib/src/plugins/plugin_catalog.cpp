#include "taskhive/plugin_catalog.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>

#include <fmt/format.h>

#include "directory_watch.hpp"
#include "library.hpp"
#include "probe.hpp"
#include "probe_cache.hpp"
#include "scan.hpp"
#include "taskhive/logging.hpp"

namespace taskhive {

namespace detail {

/// One loaded version of a plugin; dlclose'd when the last lease on it ends.
struct PluginVersion {
  std::unique_ptr<LoadedLibrary> library;
  PluginRecord record;
};

namespace {

// A candidate file as the catalog keeps it between scans.
struct CatalogEntry {
  PluginRecord record;                   // as the latest scan (and load) left it
  std::optional<KnownFile> known;        // what the next rescan compares against; none if it was not checked
  std::shared_ptr<FileDescriptor> file;  // the checked file, for a load on first lease
  std::shared_ptr<const PluginVersion> current;  // the loaded version new leases get
};

}  // namespace

class CatalogState {
 public:
  CatalogState(CatalogOptions options, std::optional<Allowlist> allowlist)
      : options_(std::move(options)), allowlist_(std::move(allowlist)) {
    if (options_.loader.probe) {
      if (options_.loader.probe_cache) cache_.emplace(*options_.loader.probe_cache);
      probes_.emplace(probe_executable(options_.loader.probe_executable), options_.loader.probe_timeout,
                      probe_concurrency());
    }
  }

  ~CatalogState() { watch_.reset(); }  // before anything it calls back into

  /// `initial`: the scan at open, which does not count as a change.
  LoadResult<RescanSummary> rescan(bool initial = false) {
    std::lock_guard serial(rescan_mutex_);
    auto dirs = resolve_dirs(options_.loader.dirs);
    if (!dirs) {
      logger()->warn("plugin rescan failed, keeping the plugins as they were: {}", dirs.error());
      return LoadResult<RescanSummary>::failure(dirs.error());
    }
    std::map<std::filesystem::path, KnownFile> known;  // a snapshot: prevalidate reads it in parallel
    {
      std::lock_guard lock(mutex_);
      for (const auto& entry : entries_)
        if (entry.known) known.emplace(entry.record.path, *entry.known);
    }
    ScanOptions scan{.dirs = *dirs,
                     .allowlist = allowlist_ ? &*allowlist_ : nullptr,
                     .probes = probes_ ? &*probes_ : nullptr,
                     .probe_concurrency = probe_concurrency(),
                     .cache = cache_ ? &*cache_ : nullptr,
                     .probe_timeout = options_.loader.probe_timeout,
                     .known = [&known](const std::filesystem::path& path) -> const KnownFile* {
                       const auto it = known.find(path);
                       return it != known.end() ? &it->second : nullptr;
                     }};
    std::vector<ScanResult> results;
    if (auto error = run_scan(options_.loader, [&] { results = scan_plugins(scan); }))
      return LoadResult<RescanSummary>::failure(std::move(*error));
    if (cache_) {
      apply_to_cache(*cache_, results);
      cache_->save();
    }
    return install(std::move(results), initial);
  }

  LoadResult<PluginLease> lease(std::string_view name) {
    using Result = LoadResult<PluginLease>;
    // A first lease loads the plugin: its constructors and entry point run then, for as long as they take.
    // That happens under load_mutex_ (one load at a time: glibc serialises dlopen anyway, and a second lease
    // must not load the same plugin twice), not under mutex_, so records(), rescans and leases of plugins
    // already loaded go on meanwhile.
    std::unique_lock loading(load_mutex_, std::defer_lock);
    std::shared_ptr<FileDescriptor> file;
    PluginRecord record;
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        const auto entry = find_available(name);
        if (entry == entries_.end())
          return Result::failure(fmt::format("no plugin named \"{}\" is available", name));
        if (entry->current) return PluginLease(entry->current);
        if (!entry->file)
          return Result::failure(
              fmt::format("plugin \"{}\" failed to load: its file is no longer open", name));
        if (loading.owns_lock()) {
          file = entry->file;
          record = entry->record;
          break;
        }
      }
      // Look again once it is this lease's turn to load: the one before may have loaded this plugin.
      loading.lock();
    }
    auto library = load_available(file->get(), record);
    std::lock_guard lock(mutex_);
    // The entry as it is now: a rescan meanwhile keeps an unchanged file's entry (and its descriptor).
    const auto entry =
        std::find_if(entries_.begin(), entries_.end(), [&](const CatalogEntry& e) { return e.file == file; });
    if (!library) {
      if (entry != entries_.end()) {
        entry->record = record;
        entry->file.reset();
      }
      return Result::failure(fmt::format("plugin \"{}\" failed to load: {}", name, record.reason));
    }
    auto version = std::make_shared<const PluginVersion>(PluginVersion{std::move(library), record});
    if (entry != entries_.end()) {
      entry->record = record;
      entry->current = version;
    }
    // If a rescan found the file changed meanwhile, this lease still holds the version it asked for.
    return PluginLease(std::move(version));
  }

  std::vector<CatalogEntry>::iterator find_available(std::string_view name) {  // under mutex_
    return std::find_if(entries_.begin(), entries_.end(), [&](const CatalogEntry& e) {
      return e.record.status != PluginStatus::refused && e.record.name == name;
    });
  }

  std::vector<PluginRecord> records() const {
    std::lock_guard lock(mutex_);
    std::vector<PluginRecord> out;
    out.reserve(entries_.size());
    for (const auto& entry : entries_) out.push_back(entry.record);
    return out;
  }

  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

  bool wait_for_change(std::uint64_t seen, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return generation() > seen; });
  }

  // Watches the directories as configured (not as resolved at open): the watch follows a directory that is
  // replaced, and each rescan resolves the names again.
  void start_watch() {
    if (!options_.watch && options_.rescan_interval.count() <= 0) return;
    watch_ = std::make_unique<DirectoryWatch>(
        options_.loader.dirs, options_.watch, options_.rescan_interval, options_.settle, [this] {
          auto summary = rescan();
          if (summary)
            logger()->debug("plugin rescan: {} added, {} changed, {} removed", summary->added,
                            summary->changed, summary->removed);
        });
  }

 private:
  // Replaces the entries with the scan's, carrying over what an unchanged file had (its loaded version, its
  // open file); versions of changed or removed files live on only in the leases held on them.
  RescanSummary install(std::vector<ScanResult> results, bool initial) {
    RescanSummary summary;
    std::vector<std::shared_ptr<const PluginVersion>> retired;  // released after the lock: dlclose is slow
    std::lock_guard lock(mutex_);
    std::map<std::filesystem::path, CatalogEntry*> previous;
    for (auto& entry : entries_) previous.emplace(entry.record.path, &entry);
    std::vector<CatalogEntry> next;
    next.reserve(results.size());
    for (auto& result : results) {
      CatalogEntry& entry = next.emplace_back();
      const auto old = previous.find(result.record.path);
      if (result.unchanged && old != previous.end()) {
        ++summary.unchanged;
        entry.current = std::move(old->second->current);
        entry.file = std::move(old->second->file);
        previous.erase(old);
      } else {
        ++(old == previous.end() ? summary.added : summary.changed);
        if (old != previous.end()) {
          retired.push_back(std::move(old->second->current));
          previous.erase(old);
        }
      }
      if (result.record.status == PluginStatus::refused) {
        retired.push_back(std::move(entry.current));
        entry.file.reset();
      } else {
        if (!entry.file && result.file)
          entry.file = std::make_shared<FileDescriptor>(std::move(result.file->fd));
        if (!entry.current && result.library) {
          PluginRecord record = result.record;
          entry.current = std::make_shared<const PluginVersion>(
              PluginVersion{std::move(result.library), std::move(record)});
        }
      }
      entry.record = entry.current ? entry.current->record : std::move(result.record);
      if (result.key) entry.known = KnownFile{*result.key, std::move(result.undeduplicated)};
    }
    summary.removed = previous.size();
    for (auto& [path, entry] : previous) retired.push_back(std::move(entry->current));
    entries_ = std::move(next);
    if (!initial && summary.added + summary.changed + summary.removed > 0) {
      generation_.fetch_add(1, std::memory_order_acq_rel);
      changed_.notify_all();
    }
    summary.generation = generation();
    return summary;  // `retired` is released here, after the lock guard: declared before it
  }

  CatalogOptions options_;
  std::optional<Allowlist> allowlist_;
  std::optional<ProbeCache> cache_;  // used under rescan_mutex_
  std::optional<ProbePool> probes_;
  std::mutex rescan_mutex_;
  std::mutex load_mutex_;     // one first-lease load at a time; taken before mutex_, never after
  mutable std::mutex mutex_;  // entries_
  mutable std::condition_variable changed_;
  std::vector<CatalogEntry> entries_;
  std::atomic<std::uint64_t> generation_{0};
  std::unique_ptr<DirectoryWatch> watch_;
};

}  // namespace detail

const taskhive_plugin_descriptor* PluginLease::descriptor() const noexcept {
  return version_ ? version_->library->descriptor : nullptr;
}

const PluginRecord& PluginLease::record() const noexcept {
  static const PluginRecord none;
  return version_ ? version_->record : none;
}

PluginCatalog::PluginCatalog(std::unique_ptr<detail::CatalogState> state) : state_(std::move(state)) {}
PluginCatalog::~PluginCatalog() = default;

LoadResult<std::unique_ptr<PluginCatalog>> PluginCatalog::open(CatalogOptions options) {
  using Result = LoadResult<std::unique_ptr<PluginCatalog>>;
  auto dirs = detail::resolve_dirs(options.loader.dirs);
  if (!dirs) return Result::failure(dirs.error());
  std::optional<detail::Allowlist> allowlist;
  if (options.loader.allowlist) {
    auto list = detail::read_allowlist(*options.loader.allowlist);
    if (!list) return Result::failure(list.error());
    allowlist = std::move(list.value());
  }
  auto state = std::make_unique<detail::CatalogState>(std::move(options), std::move(allowlist));
  if (auto first = state->rescan(/*initial=*/true); !first) return Result::failure(first.error());
  state->start_watch();
  return std::unique_ptr<PluginCatalog>(new PluginCatalog(std::move(state)));
}

LoadResult<RescanSummary> PluginCatalog::rescan() {
  return state_->rescan();
}
LoadResult<PluginLease> PluginCatalog::lease(std::string_view name) {
  return state_->lease(name);
}
std::vector<PluginRecord> PluginCatalog::records() const {
  return state_->records();
}
std::uint64_t PluginCatalog::generation() const noexcept {
  return state_->generation();
}
bool PluginCatalog::wait_for_change(std::uint64_t seen, std::chrono::milliseconds timeout) const {
  return state_->wait_for_change(seen, timeout);
}

}  // namespace taskhive
