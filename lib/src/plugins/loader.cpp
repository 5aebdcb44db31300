#include "taskhive/loader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "library.hpp"
#include "probe.hpp"
#include "probe_cache.hpp"
#include "scan.hpp"
#include "taskhive/logging.hpp"

namespace taskhive {

namespace detail {

PluginRegistry scan_into_registry(const std::vector<std::filesystem::path>& dirs, const Allowlist* allowlist,
                                  const LoaderOptions& options) {
  std::optional<ProbeCache> cache;
  std::optional<ProbePool> probes;
  if (options.probe) {
    if (options.probe_cache) cache.emplace(*options.probe_cache);
    probes.emplace(probe_executable(options.probe_executable), options.probe_timeout, probe_concurrency());
  }
  ScanOptions scan{.dirs = dirs,
                   .allowlist = allowlist,
                   .probes = probes ? &*probes : nullptr,
                   .probe_concurrency = probe_concurrency(),
                   .cache = cache ? &*cache : nullptr,
                   .probe_timeout = options.probe_timeout,
                   .known = {}};
  const auto started = std::chrono::steady_clock::now();
  auto results = scan_plugins(scan);
  std::size_t hits = 0, probed = 0;
  PluginRegistry registry;
  if (cache) apply_to_cache(*cache, results);
  for (auto& result : results) {
    hits += result.cache_hit != nullptr;
    probed += result.cache_update.has_value();
    std::unique_ptr<LoadedLibrary> library = std::move(result.library);
    if (!library && result.file && result.record.status == PluginStatus::available) {
      // Not loaded: just the checked descriptor, kept for PluginRegistry::load.
      library = std::make_unique<LoadedLibrary>(nullptr, std::move(result.file->fd), std::string());
    }
    registry.add(std::move(result.record), std::move(library));
  }
  if (cache) cache->save();
  logger()->debug(
      "scanned {} plugin files in {} ms ({} probed, {} from the probe cache)", results.size(),
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
          .count(),
      probed, hits);
  return registry;
}

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
  auto loaded = detail::load_available(library->second->fd.get(), *record);
  if (!loaded) {
    libraries_.erase(library);
    return Result::failure(fmt::format("plugin \"{}\" failed to load: {}", name, record->reason));
  }
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
  const detail::Allowlist* allowed = allowlist ? &*allowlist : nullptr;
  std::optional<PluginRegistry> registry;
  if (auto error =
          detail::run_scan(options, [&] { registry = detail::scan_into_registry(*dirs, allowed, options); }))
    return LoadResult<PluginRegistry>::failure(std::move(*error));
  return std::move(*registry);
}

}  // namespace taskhive
