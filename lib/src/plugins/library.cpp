#include "library.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>

#include "descriptor_check.hpp"

namespace taskhive::detail {

namespace {

void pin_for_good(FileDescriptor fd) {
  static auto* pinned = new std::vector<FileDescriptor>;  // outlives static destructors on purpose
  pinned->push_back(std::move(fd));
}

}  // namespace

LoadedLibrary::~LoadedLibrary() {
  if (!handle) return;
  dlclose(handle);
  if (void* still = dlopen(proc_name.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
    dlclose(still);
    pin_for_good(std::move(fd));
  }
}

std::string private_copy_name(const PluginRecord& record) {
  // memfd names are at most 249 bytes; the file name is cut, the digest prefix kept.
  return fmt::format("taskhive-plugin:{:.200}@{:.12}", record.path.filename().string(), record.sha256);
}

std::unique_ptr<LoadedLibrary> load_private_copy(int fd, PluginRecord& record) {
  const auto started = std::chrono::steady_clock::now();
  FileDescriptor copy(memfd_create(private_copy_name(record).c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!copy) {
    record.reason = fmt::format("cannot make a private copy to load: {}", std::strerror(errno));
    return nullptr;
  }
  const auto digest = sha256_hex(fd, copy.get());
  if (!digest) {
    record.reason = fmt::format("cannot read: {}", std::strerror(errno));
    return nullptr;
  }
  if (*digest != record.sha256) {
    record.reason = fmt::format("its contents changed since it was checked (sha256 {}, checked {})", *digest,
                                record.sha256);
    return nullptr;
  }
  // Sealed: nothing in this process can change the bytes that were hashed, before or after they are mapped.
  if (fcntl(copy.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    record.reason = fmt::format("cannot seal the private copy: {}", std::strerror(errno));
    return nullptr;
  }
  std::string proc_name = fmt::format("/proc/self/fd/{}", copy.get());
  dlerror();
  void* handle = dlopen(proc_name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* error = dlerror();
    record.reason = fmt::format("dlopen failed: {}",
                                naming_file(error ? error : "unknown error", proc_name, record.path));
    return nullptr;
  }
  auto library = std::make_unique<LoadedLibrary>(handle, std::move(copy), std::move(proc_name));
  const taskhive_plugin_descriptor* descriptor = read_descriptor(handle, record);
  if (!descriptor) return nullptr;
  library->descriptor = descriptor;
  record.status = PluginStatus::loaded;
  record.reason.clear();
  record.loaded_at = std::chrono::system_clock::now();
  record.load_duration =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
  return library;
}

std::unique_ptr<LoadedLibrary> load_available(int fd, PluginRecord& record) {
  PluginRecord loaded = record;
  auto library = load_private_copy(fd, loaded);
  if (library && loaded.name == record.name) {
    record = std::move(loaded);
    return library;
  }
  record.status = PluginStatus::refused;
  record.reason = library ? fmt::format("its name changed since the probe, to \"{}\"", loaded.name)
                          : std::move(loaded.reason);
  return nullptr;
}

}  // namespace taskhive::detail
