#pragma once
// One loaded version of a plugin: a private, sealed copy of the checked bytes, dlopen'ed.
//
// Why a copy and not the file: what runs must be exactly the bytes that were checked, and must stay so.
// Loading the plugin file itself (even through /proc/self/fd/N of the checked descriptor) maps the file, so a
// plugin rewritten in place (`cp new.so plugin.so` truncates and writes the same inode) changes, or crashes,
// the code that is running; and glibc recognises a library it already has by device and inode, so the new
// version of a file rewritten in place would come back as the old handle. A memfd per version has its own
// inode, is sealed against writes, and is hashed while it is filled: hot reload loads each version from its
// own copy, and the digest checked is the digest of what is mapped.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "file_checks.hpp"
#include "taskhive/loader.hpp"
#include "taskhive/plugin_abi.h"

namespace taskhive::detail {

/// A dlopen'ed plugin, or (handle null) a checked file waiting to be loaded. dlclose at destruction.
///
/// The descriptor stays open while the library is loaded: glibc also recognises an already-loaded library by
/// the name it was opened with, "/proc/self/fd/N", so if N were closed and reused for another file, dlopen of
/// that file would return this library instead. For the same reason, a library that stays mapped after
/// dlclose (one marked NODELETE, or with STB_GNU_UNIQUE symbols) keeps its descriptor open for good.
struct LoadedLibrary {
  LoadedLibrary(void* h, FileDescriptor f, std::string n)
      : handle(h), fd(std::move(f)), proc_name(std::move(n)) {}
  ~LoadedLibrary();
  LoadedLibrary(const LoadedLibrary&) = delete;
  LoadedLibrary& operator=(const LoadedLibrary&) = delete;

  void* handle;
  const taskhive_plugin_descriptor* descriptor = nullptr;  // static storage in the library
  FileDescriptor fd;
  std::string proc_name;
};

/// The name the private copy of `record` gets, as /proc/self/maps shows it ("/memfd:NAME (deleted)"):
/// "taskhive-plugin:FILE@SHA12", FILE being the plugin's file name and SHA12 the first 12 hex digits of its
/// SHA-256.
std::string private_copy_name(const PluginRecord& record);

/// Copies the checked file open on `fd` into a sealed memfd, hashing as it copies, and refuses it ("its
/// contents changed since it was checked (sha256 X, checked Y)") unless the digest is record.sha256; then
/// dlopens the copy and reads its descriptor. Fills `record` (status loaded, name, version, kinds, loaded_at,
/// load_duration; or reason) and returns the library, or nullptr when refused. Does not check for a duplicate
/// name: only the caller knows the other plugins.
std::unique_ptr<LoadedLibrary> load_private_copy(int fd, PluginRecord& record);

/// Loads an `available` plugin (probed in a child, or found unchanged in the probe cache) from its checked
/// file `fd` with load_private_copy, and checks that it still has the name it was probed with. On success
/// `record` becomes loaded; otherwise it becomes refused with the reason, and nothing is returned.
std::unique_ptr<LoadedLibrary> load_available(int fd, PluginRecord& record);

}  // namespace taskhive::detail
