#include "taskhive/loader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <dlfcn.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include "descriptor_check.hpp"
#include "file_checks.hpp"
#include "probe.hpp"
#include "probe_cache.hpp"
#include "taskhive/logging.hpp"

namespace taskhive {

namespace detail {

/// A dlopen'ed plugin and the descriptor it was loaded through.
///
/// The descriptor stays open while the library is loaded: glibc recognises an already-loaded library by the
/// name it was opened with, "/proc/self/fd/N", so if N were closed and reused for another file, dlopen of
/// that file would return this library instead. For the same reason, a library that stays mapped after
/// dlclose (one marked NODELETE, or with STB_GNU_UNIQUE symbols) keeps its descriptor open for good.
struct LoadedLibrary {
  LoadedLibrary(void* h, FileDescriptor f, std::string n)
      : handle(h), fd(std::move(f)), proc_name(std::move(n)) {}
  ~LoadedLibrary() {
    if (!handle) return;
    dlclose(handle);
    if (void* still = dlopen(proc_name.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
      dlclose(still);
      (void)fd_leaked_on_purpose(std::move(fd));
    }
  }
  LoadedLibrary(const LoadedLibrary&) = delete;
  LoadedLibrary& operator=(const LoadedLibrary&) = delete;

  static int fd_leaked_on_purpose(FileDescriptor f) {
    static std::vector<FileDescriptor>* pinned = new std::vector<FileDescriptor>;  // outlives static dtors
    pinned->push_back(std::move(f));
    return pinned->back().get();
  }

  void* handle;
  const taskhive_plugin_descriptor* descriptor = nullptr;  // static storage in the library
  FileDescriptor fd;
  std::string proc_name;
};

namespace {

struct Allowlist {
  std::filesystem::path path;
  std::set<std::string> digests;
};

LoadResult<Allowlist> read_allowlist(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in)
    return LoadResult<Allowlist>::failure(
        fmt::format("cannot read the plugin allowlist {}: {}", path.string(), std::strerror(errno)));
  Allowlist list{path, {}};
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::string digest, name;
    if (!(fields >> digest)) continue;  // blank or comment
    std::transform(digest.begin(), digest.end(), digest.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    const bool hex = digest.size() == 64 && std::all_of(digest.begin(), digest.end(), [](char c) {
                       return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                     });
    if (!hex || !(fields >> name))
      return LoadResult<Allowlist>::failure(fmt::format(
          "{}:{}:1: error: expected \"SHA256 NAME\" (64 hex digits, a space, a name), as sha256sum "
          "prints",
          path.string(), number));
    list.digests.insert(digest);
  }
  return list;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// Digest and allowlist of the open, checked descriptor; false (with record.reason) if refused.
bool digest_allowed(const CheckedFile& file, PluginRecord& record, const Allowlist* allowlist) {
  auto digest = sha256_hex(file.fd.get());
  if (!digest) {
    record.reason = fmt::format("cannot read: {}", std::strerror(errno));
    return false;
  }
  record.sha256 = std::move(*digest);
  if (allowlist && !allowlist->digests.contains(record.sha256)) {
    record.reason =
        fmt::format("sha256 {} is not in the allowlist {}", record.sha256, allowlist->path.string());
    return false;
  }
  return true;
}

// dlopen of the checked descriptor and its descriptor read (not the duplicate-name check). Fills `record`;
// returns the library, with its descriptor set, or nullptr.
std::unique_ptr<LoadedLibrary> open_checked(FileDescriptor fd, PluginRecord& record) {
  const auto started = std::chrono::steady_clock::now();
  // Through the descriptor, never the path again: what runs is exactly the bytes checked and hashed above.
  std::string proc_name = fmt::format("/proc/self/fd/{}", fd.get());
  dlerror();
  void* handle = dlopen(proc_name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* error = dlerror();
    record.reason = fmt::format(
        "dlopen failed: {}", replace_all(error ? error : "unknown error", proc_name, record.path.string()));
    return nullptr;
  }
  auto library = std::make_unique<LoadedLibrary>(handle, std::move(fd), std::move(proc_name));

  const taskhive_plugin_descriptor* descriptor = read_descriptor(handle, record);
  if (!descriptor) return nullptr;
  library->descriptor = descriptor;
  record.status = PluginStatus::loaded;
  record.loaded_at = std::chrono::system_clock::now();
  record.load_duration =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
  return library;
}

// Everything from the open, checked descriptor on: digest, allowlist, dlopen, descriptor, unique name. Fills
// `record`; returns the library when the plugin loads.
std::unique_ptr<LoadedLibrary> load_checked(CheckedFile file, PluginRecord& record,
                                            const Allowlist* allowlist, const PluginRegistry& registry) {
  if (!digest_allowed(file, record, allowlist)) return nullptr;
  auto library = open_checked(std::move(file.fd), record);
  if (!library) return nullptr;
  if (const PluginRecord* winner = registry.find(record.name)) {
    record.status = PluginStatus::refused;
    record.loaded_at = {};
    record.reason = fmt::format("duplicate plugin name \"{}\": already loaded from {}", record.name,
                                winner->path.string());
    return nullptr;
  }
  return library;
}

LoadResult<std::vector<std::filesystem::path>> resolve_dirs(const std::vector<std::filesystem::path>& dirs) {
  using Result = LoadResult<std::vector<std::filesystem::path>>;
  std::vector<std::filesystem::path> resolved;
  for (const auto& dir : dirs) {
    std::error_code ec;
    const auto absolute = std::filesystem::absolute(dir, ec);
    const auto canonical = ec ? absolute : std::filesystem::canonical(absolute, ec);
    if (ec) return Result::failure(fmt::format("plugin directory {} does not exist", dir.string()));
    if (!std::filesystem::is_directory(canonical, ec))
      return Result::failure(fmt::format("plugin directory {} is not a directory", dir.string()));
    if (std::find(resolved.begin(), resolved.end(), canonical) == resolved.end())
      resolved.push_back(canonical);
  }
  return resolved;
}

std::vector<std::string> candidate_names(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.starts_with('.') || !name.ends_with(".so")) continue;
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());  // name order, so search order does not depend on the file system
  return names;
}

// Why a plugin directory must not be trusted, or nothing.
std::optional<std::string> dir_problem(const std::filesystem::path& dir) {
  struct stat dir_stat {};
  if (stat(dir.c_str(), &dir_stat) != 0)
    return fmt::format("cannot stat its plugin directory: {}", std::strerror(errno));
  return directory_problem(dir_stat);
}

// load_plugins with options.probe: every check as without probe, then one probe run over all checked files
// (batched, so a child process serves many plugins), then the duplicate-name check in search order.
PluginRegistry probe_and_register(const std::vector<std::filesystem::path>& dirs, const Allowlist* allowlist,
                                  const LoaderOptions& options) {
  std::optional<ProbeCache> cache;
  if (options.probe_cache) cache.emplace(*options.probe_cache);
  std::vector<PluginRecord> records;
  std::vector<std::optional<CheckedFile>> files;
  std::vector<std::optional<ProbeCacheKey>> to_probe;  // the key of each file to hash and probe
  std::size_t hits = 0;
  for (const auto& dir : dirs) {
    const auto problem = dir_problem(dir);
    for (const auto& name : candidate_names(dir)) {
      PluginRecord& record = records.emplace_back();
      record.path = dir / name;
      std::optional<CheckedFile>& file = files.emplace_back();
      std::optional<ProbeCacheKey>& key = to_probe.emplace_back();
      if (problem) {
        record.reason = *problem;
        continue;
      }
      auto check = check_candidate(record.path, dir);
      if (!check.file) {
        record.reason = std::move(check.reason);
        continue;
      }
      struct stat st {};
      const ProbeCacheKey file_key =
          fstat(check.file->fd.get(), &st) == 0 ? probe_cache_key(st) : ProbeCacheKey{};
      if (const ProbeCacheEntry* hit =
              cache ? cache->find(record.path, file_key, options.probe_timeout) : nullptr) {
        // Unchanged since it was probed: neither hashed nor probed; load() verifies the digest.
        ++hits;
        cache->keep(hit);
        record.status = hit->record.status;
        record.reason = hit->record.reason;
        record.name = hit->record.name;
        record.version = hit->record.version;
        record.description = hit->record.description;
        record.kinds = hit->record.kinds;
        record.sha256 = hit->record.sha256;
        if (allowlist && !allowlist->digests.contains(record.sha256)) {
          std::string sha256 = std::move(record.sha256);
          record = PluginRecord{};
          record.path = dir / name;
          record.sha256 = std::move(sha256);
          record.reason =
              fmt::format("sha256 {} is not in the allowlist {}", record.sha256, allowlist->path.string());
        } else if (record.status == PluginStatus::available) {
          file = std::move(check.file);
        }
      } else if (digest_allowed(*check.file, record, allowlist)) {
        file = std::move(check.file);
        key = file_key;
      }
    }
  }
  std::vector<ProbeJob> jobs;
  for (std::size_t i = 0; i < records.size(); ++i)
    if (files[i] && to_probe[i]) jobs.push_back({files[i]->fd.get(), &records[i]});
  const auto started = std::chrono::steady_clock::now();
  if (!jobs.empty())
    detail::probe_plugins(jobs, probe_executable(options.probe_executable), options.probe_timeout);
  logger()->debug(
      "probed {} plugins in {} ms ({} from the probe cache)", jobs.size(),
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
          .count(),
      hits);
  if (cache) {
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (!to_probe[i]) continue;
      const PluginRecord& record = records[i];
      // A failure of the probe itself says nothing about the plugin: probed again next time.
      if (record.reason.starts_with("cannot start the plugin probe") ||
          record.reason.starts_with("plugin probe "))
        continue;
      PluginRecord cached;
      cached.path = record.path;
      cached.status = record.status;
      cached.reason = record.reason;
      if (record.status == PluginStatus::available) {
        cached.name = record.name;
        cached.version = record.version;
        cached.description = record.description;
        cached.kinds = record.kinds;
      }
      cached.sha256 = record.sha256;
      cache->put({*to_probe[i], std::move(cached), options.probe_timeout});
    }
    cache->save();
  }

  PluginRegistry registry;
  for (std::size_t i = 0; i < records.size(); ++i) {
    PluginRecord& record = records[i];
    std::unique_ptr<LoadedLibrary> pending;
    if (record.status == PluginStatus::available) {
      if (const PluginRecord* winner = registry.find(record.name)) {
        record.status = PluginStatus::refused;
        record.reason = fmt::format("duplicate plugin name \"{}\": already available from {}", record.name,
                                    winner->path.string());
      } else {
        // Not loaded: just the checked descriptor, kept for PluginRegistry::load.
        std::string proc_name = fmt::format("/proc/self/fd/{}", files[i]->fd.get());
        pending = std::make_unique<LoadedLibrary>(nullptr, std::move(files[i]->fd), std::move(proc_name));
      }
    }
    if (record.status == PluginStatus::refused)
      logger()->debug("plugin {} refused: {}", record.path.string(), record.reason);
    registry.add(std::move(record), std::move(pending));
  }
  return registry;
}

}  // namespace
}  // namespace detail

std::string_view to_string(PluginStatus status) noexcept {
  switch (status) {
    case PluginStatus::loaded:
      return "loaded";
    case PluginStatus::available:
      return "available";
    case PluginStatus::refused:
      return "refused";
  }
  return "unknown";
}

std::string_view kind_type_name(std::uint32_t type) noexcept {
  switch (type) {
    case TASKHIVE_KIND_SOURCE:
      return "source";
    case TASKHIVE_KIND_TRANSFORM:
      return "transform";
    case TASKHIVE_KIND_SINK:
      return "sink";
    case TASKHIVE_KIND_TASK:
      return "task";
    default:
      return "unknown";
  }
}

PluginRegistry::PluginRegistry() = default;
PluginRegistry::~PluginRegistry() = default;
PluginRegistry::PluginRegistry(PluginRegistry&&) noexcept = default;
PluginRegistry& PluginRegistry::operator=(PluginRegistry&&) noexcept = default;

const PluginRecord* PluginRegistry::find(std::string_view name) const noexcept {
  for (const auto& record : records_)
    if (record.status != PluginStatus::refused && record.name == name) return &record;
  return nullptr;
}

LoadResult<const taskhive_plugin_descriptor*> PluginRegistry::load(std::string_view name) {
  using Result = LoadResult<const taskhive_plugin_descriptor*>;
  auto record = std::find_if(records_.begin(), records_.end(), [&](const PluginRecord& r) {
    return r.status != PluginStatus::refused && r.name == name;
  });
  auto library =
      std::find_if(libraries_.begin(), libraries_.end(), [&](const auto& l) { return l.first == name; });
  if (record == records_.end() || library == libraries_.end())
    return Result::failure(fmt::format("no plugin named \"{}\" is available", name));
  if (record->status == PluginStatus::loaded) return library->second->descriptor;
  // The descriptor that was checked and probed (or found unchanged in the probe cache): its bytes must still
  // be the ones the probe vouched for.
  if (const auto digest = detail::sha256_hex(library->second->fd.get());
      !digest || *digest != record->sha256) {
    record->status = PluginStatus::refused;
    record->reason = digest ? fmt::format("its contents changed since it was probed (sha256 {}, probed {})",
                                          *digest, record->sha256)
                            : fmt::format("cannot read: {}", std::strerror(errno));
    libraries_.erase(library);
    return Result::failure(fmt::format("plugin \"{}\" failed to load: {}", name, record->reason));
  }
  PluginRecord reloaded = *record;
  auto loaded = detail::open_checked(std::move(library->second->fd), reloaded);
  if (!loaded || reloaded.name != record->name) {
    record->status = PluginStatus::refused;
    record->reason = loaded ? fmt::format("its name changed since the probe, to \"{}\"", reloaded.name)
                            : std::move(reloaded.reason);
    libraries_.erase(library);
    return Result::failure(fmt::format("plugin \"{}\" failed to load: {}", name, record->reason));
  }
  *record = std::move(reloaded);
  library->second = std::move(loaded);
  return library->second->descriptor;
}

const taskhive_plugin_descriptor* PluginRegistry::descriptor(std::string_view name) const noexcept {
  for (const auto& [loaded_name, library] : libraries_) {
    if (loaded_name == name) return library->descriptor;
  }
  return nullptr;
}

void PluginRegistry::add(PluginRecord record, std::unique_ptr<detail::LoadedLibrary> library) {
  if (library && record.status != PluginStatus::refused)
    libraries_.emplace_back(record.name, std::move(library));
  records_.push_back(std::move(record));
}

std::vector<std::filesystem::path> plugin_dirs_from_env() {
  std::vector<std::filesystem::path> dirs;
  const char* value = std::getenv("TASKHIVE_PLUGIN_PATH");
  if (!value) return dirs;
  std::string_view rest(value);
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const std::filesystem::path dir(rest.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    if (dir.empty())
      continue;  // an empty entry means "." in PATH; plugins never come from the current directory
    if (dir.is_relative()) {
      logger()->warn("TASKHIVE_PLUGIN_PATH: ignoring relative directory {}; give absolute paths",
                     dir.string());
      continue;
    }
    dirs.push_back(dir);
  }
  return dirs;
}

LoadResult<PluginRegistry> load_plugins(const LoaderOptions& options) {
  auto dirs = detail::resolve_dirs(options.dirs);
  if (!dirs) return LoadResult<PluginRegistry>::failure(dirs.error());
  std::optional<detail::Allowlist> allowlist;
  if (options.allowlist) {
    auto list = detail::read_allowlist(*options.allowlist);
    if (!list) return LoadResult<PluginRegistry>::failure(list.error());
    allowlist = std::move(list.value());
  }

  PluginRegistry registry;
  if (options.probe) return detail::probe_and_register(*dirs, allowlist ? &*allowlist : nullptr, options);
  for (const auto& dir : *dirs) {
    struct stat dir_stat {};
    std::optional<std::string> dir_problem;
    if (stat(dir.c_str(), &dir_stat) != 0)
      dir_problem = fmt::format("cannot stat its plugin directory: {}", std::strerror(errno));
    else
      dir_problem = detail::directory_problem(dir_stat);

    for (const auto& name : detail::candidate_names(dir)) {
      PluginRecord record;
      record.path = dir / name;
      std::unique_ptr<detail::LoadedLibrary> library;
      if (dir_problem) {
        record.reason = *dir_problem;
      } else if (auto check = detail::check_candidate(record.path, dir); !check.file) {
        record.reason = std::move(check.reason);
      } else {
        library =
            detail::load_checked(std::move(*check.file), record, allowlist ? &*allowlist : nullptr, registry);
      }
      if (record.status != PluginStatus::loaded) {
        library.reset();  // unload a refused plugin at once
        logger()->debug("plugin {} refused: {}", record.path.string(), record.reason);
      }
      registry.add(std::move(record), std::move(library));
    }
  }
  return registry;
}

}  // namespace taskhive
