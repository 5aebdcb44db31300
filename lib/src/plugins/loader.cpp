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

// Everything from the open, checked descriptor on: digest, allowlist, dlopen, descriptor. Fills `record`;
// returns the library when the plugin loads.
std::unique_ptr<LoadedLibrary> load_checked(CheckedFile file, PluginRecord& record,
                                            const Allowlist* allowlist, const PluginRegistry& registry) {
  auto digest = sha256_hex(file.fd.get());
  if (!digest) {
    record.reason = fmt::format("cannot read: {}", std::strerror(errno));
    return nullptr;
  }
  record.sha256 = std::move(*digest);
  if (allowlist && !allowlist->digests.contains(record.sha256)) {
    record.reason =
        fmt::format("sha256 {} is not in the allowlist {}", record.sha256, allowlist->path.string());
    return nullptr;
  }

  const auto started = std::chrono::steady_clock::now();
  // Through the descriptor, never the path again: what runs is exactly the bytes checked and hashed above.
  std::string proc_name = fmt::format("/proc/self/fd/{}", file.fd.get());
  dlerror();
  void* handle = dlopen(proc_name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* error = dlerror();
    record.reason = fmt::format(
        "dlopen failed: {}", replace_all(error ? error : "unknown error", proc_name, record.path.string()));
    return nullptr;
  }
  auto library = std::make_unique<LoadedLibrary>(handle, std::move(file.fd), std::move(proc_name));

  dlerror();
  auto entry = reinterpret_cast<taskhive_plugin_entry_fn>(dlsym(handle, TASKHIVE_PLUGIN_ENTRY_SYMBOL));
  if (!entry) {
    record.reason =
        "no taskhive_plugin_entry symbol: not a taskhive plugin (export it with TASKHIVE_PLUGIN_EXPORT)";
    return nullptr;
  }
  const taskhive_plugin_descriptor* descriptor = entry();
  if (!descriptor) {
    record.reason = "taskhive_plugin_entry returned NULL";
    return nullptr;
  }
  if (descriptor->abi_version != TASKHIVE_PLUGIN_ABI_VERSION) {
    record.reason = fmt::format(
        "ABI version mismatch: expected {}, found {}; rebuild the plugin against this "
        "taskhive's plugin_abi.h",
        TASKHIVE_PLUGIN_ABI_VERSION, descriptor->abi_version);
    return nullptr;
  }
  if (auto problem = descriptor_problem(*descriptor)) {
    if (descriptor->name && *descriptor->name) record.name = descriptor->name;
    record.reason = std::move(*problem);
    return nullptr;
  }
  record.name = descriptor->name;
  record.version = descriptor->version;
  record.description = descriptor->description ? descriptor->description : "";
  record.kinds = copy_kinds(*descriptor);
  if (const PluginRecord* winner = registry.find(record.name)) {
    record.reason = fmt::format("duplicate plugin name \"{}\": already loaded from {}", record.name,
                                winner->path.string());
    return nullptr;
  }
  library->descriptor = descriptor;
  record.status = PluginStatus::loaded;
  record.loaded_at = std::chrono::system_clock::now();
  record.load_duration =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
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
    if (record.status == PluginStatus::loaded && record.name == name) return &record;
  return nullptr;
}

const taskhive_plugin_descriptor* PluginRegistry::descriptor(std::string_view name) const noexcept {
  for (const auto& [loaded_name, library] : libraries_) {
    if (loaded_name == name) return library->descriptor;
  }
  return nullptr;
}

void PluginRegistry::add(PluginRecord record, std::unique_ptr<detail::LoadedLibrary> library) {
  if (library && record.status == PluginStatus::loaded)
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
