#pragma once
// The checks a candidate file passes before any of its code runs: how it is opened, who may write it, whether
// it is an ELF shared object for this machine, and its digest. All of them read one open descriptor, so what
// was checked is what gets loaded.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <sys/stat.h>

namespace taskhive::detail {

/// An open file descriptor, closed on destruction.
class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
  ~FileDescriptor();
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// A candidate that passed the file checks: its descriptor (to hash and to load) and size.
struct CheckedFile {
  FileDescriptor fd;
  off_t size = 0;
};

/// Either a checked file or the reason it was refused.
struct FileCheck {
  std::optional<CheckedFile> file;
  std::string reason;
};

/// Why a plugin directory (already fstat'ed) must not be trusted, or nothing.
std::optional<std::string> directory_problem(const struct stat& dir);

/// Resolves `entry` (a path inside the canonical directory `dir`), refuses a symlink leading outside `dir`,
/// opens it without following symlinks or blocking, and checks type, ownership, permissions, size and the ELF
/// header.
FileCheck check_candidate(const std::filesystem::path& entry, const std::filesystem::path& dir);

/// Why the file open on `fd`, of `file_size` bytes, is not a complete ELF shared object for this machine, or
/// nothing. Reads the ELF header and program headers with pread.
std::optional<std::string> elf_problem(int fd, off_t file_size);

/// `text` (a dlerror message) with every `proc_name` ("/proc/self/fd/N", the name a checked file was loaded
/// through) replaced by the plugin's path: people want to read which file failed.
std::string naming_file(std::string text, std::string_view proc_name, const std::filesystem::path& path);

/// The SHA-256 of everything `fd` holds, as lowercase hex, or nothing on a read or write error (errno set).
/// With `copy_to`, the bytes hashed are also written there, in the same pass: what was copied is exactly what
/// was hashed.
std::optional<std::string> sha256_hex(int fd, int copy_to = -1);

}  // namespace taskhive::detail
