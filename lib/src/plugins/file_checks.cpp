#include "file_checks.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <memory>
#include <vector>

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/evp.h>

namespace taskhive::detail {

namespace {

#if defined(__x86_64__)
constexpr unsigned host_machine = EM_X86_64;
#elif defined(__aarch64__)
constexpr unsigned host_machine = EM_AARCH64;
#else
#error "taskhive's plugin loader knows the ELF machine of x86-64 and AArch64 hosts only"
#endif

std::string machine_name(unsigned machine) {
  switch (machine) {
    case EM_X86_64:
      return "x86-64";
    case EM_AARCH64:
      return "AArch64";
    case EM_386:
      return "i386";
    case EM_ARM:
      return "ARM";
    case EM_RISCV:
      return "RISC-V";
    case EM_PPC64:
      return "PowerPC64";
    case EM_S390:
      return "s390";
    default:
      return fmt::format("ELF machine {}", machine);
  }
}

std::string file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "directory";
  if (S_ISFIFO(mode)) return "FIFO";
  if (S_ISCHR(mode)) return "character device";
  if (S_ISBLK(mode)) return "block device";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISLNK(mode)) return "symlink";
  return "unknown file type";
}

std::string not_regular(mode_t mode) {
  return fmt::format("not a regular file ({})", file_type_name(mode));
}

// Why the owner or mode of a file or directory make it unsafe to trust, or nothing. Writable by others
// means anyone of them can put code into this process; owned by another (non-root) user, the same.
std::optional<std::string> ownership_problem(const struct stat& st, std::string_view what) {
  if (st.st_uid != 0 && st.st_uid != geteuid())
    return fmt::format("{}owned by another user (uid {}); plugins must belong to root or to uid {}", what,
                       st.st_uid, geteuid());
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return fmt::format("{}writable by group or others (mode {:04o}); fix with chmod go-w", what,
                       st.st_mode & 07777);
  return std::nullopt;
}

bool read_exactly(int fd, void* buffer, std::size_t size, off_t offset) {
  auto* out = static_cast<unsigned char*>(buffer);
  while (size > 0) {
    const ssize_t n = pread(fd, out, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    size -= static_cast<std::size_t>(n);
    offset += n;
  }
  return true;
}

// Whether [offset, offset + count * entry_size) lies within a file of `size` bytes, without overflow.
bool fits(std::uint64_t offset, std::uint64_t count, std::uint64_t entry_size, std::uint64_t size) {
  if (entry_size != 0 && count > UINT64_MAX / entry_size) return false;
  return offset <= size && count * entry_size <= size - offset;
}

std::string truncated(std::uint64_t needed, off_t size) {
  return fmt::format("truncated: its ELF headers need at least {} bytes, the file has {}", needed, size);
}

std::uint64_t end_of(std::uint64_t offset, std::uint64_t length) {
  return offset > UINT64_MAX - length ? UINT64_MAX : offset + length;
}

// Bytes a shared object may carry past its last section or segment (some tools append a little data).
constexpr std::uint64_t kTrailingSlack = 1 << 20;

// A file much longer than its ELF contents reach (its header tables, segments and sections with bytes in the
// file) is refused: everything a candidate holds is hashed, and copied before it is loaded, so padding or a
// sparse hole of gigabytes would cost that much time and memory for nothing. Called once the headers and
// segments are known to fit in the file; `segments_end` is where the furthest segment ends.
std::optional<std::string> trailing_bytes_problem(int fd, const Elf64_Ehdr& header, std::uint64_t size,
                                                  std::uint64_t segments_end) {
  std::uint64_t extent = std::max<std::uint64_t>(sizeof header, segments_end);
  extent = std::max(extent, end_of(header.e_phoff, std::uint64_t{header.e_phnum} * header.e_phentsize));
  extent = std::max(extent, end_of(header.e_shoff, std::uint64_t{header.e_shnum} * header.e_shentsize));
  if (header.e_shentsize == sizeof(Elf64_Shdr) && header.e_shnum > 0) {
    std::vector<Elf64_Shdr> sections(header.e_shnum);
    if (!read_exactly(fd, sections.data(), sections.size() * sizeof(Elf64_Shdr),
                      static_cast<off_t>(header.e_shoff)))
      return truncated(end_of(header.e_shoff, sections.size() * sizeof(Elf64_Shdr)),
                       static_cast<off_t>(size));
    for (const auto& section : sections)
      if (section.sh_type != SHT_NOBITS)
        extent = std::max(extent, end_of(section.sh_offset, section.sh_size));
  }
  if (size <= end_of(extent, kTrailingSlack)) return std::nullopt;
  return fmt::format(
      "{} bytes past the end of its ELF contents ({} bytes); a padded or sparse file is refused, not read "
      "whole",
      size - extent, extent);
}

}  // namespace

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) close(fd_);
}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

std::optional<std::string> directory_problem(const struct stat& dir) {
  return ownership_problem(dir, "plugin directory ");
}

FileCheck check_candidate(const std::filesystem::path& entry, const std::filesystem::path& dir) {
  struct stat link {};
  if (lstat(entry.c_str(), &link) != 0)
    return {std::nullopt, fmt::format("cannot stat: {}", std::strerror(errno))};

  std::filesystem::path target = entry;
  if (S_ISLNK(link.st_mode)) {
    std::error_code ec;
    target = std::filesystem::canonical(entry, ec);
    if (ec) return {std::nullopt, fmt::format("broken symlink: {}", ec.message())};
    const auto inside = target.lexically_relative(dir);
    if (inside.empty() || *inside.begin() == "..")
      return {std::nullopt,
              fmt::format("symlink leads outside its plugin directory (to {})", target.string())};
    // Into a subdirectory: each directory on the way is trusted as the plugin directory is, or whoever may
    // write one could put other code where the symlink points.
    std::filesystem::path through = dir;
    for (auto part = inside.begin(); std::next(part) != inside.end(); ++part) {
      through /= *part;
      struct stat sub {};
      if (lstat(through.c_str(), &sub) != 0)
        return {std::nullopt, fmt::format("cannot stat {}: {}", through.string(), std::strerror(errno))};
      const auto what =
          fmt::format("its symlink leads through {}/, which is ", through.lexically_relative(dir).string());
      if (auto problem = ownership_problem(sub, what)) return {std::nullopt, std::move(*problem)};
    }
  }

  // O_NOFOLLOW: the path checked above is the path opened, not whatever a symlink swapped in since.
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  FileDescriptor fd(open(target.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    const int error = errno;
    struct stat st {};
    if (lstat(target.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
      return {std::nullopt, not_regular(st.st_mode)};  // a socket cannot be opened at all (ENXIO)
    return {std::nullopt, fmt::format("cannot open: {}", std::strerror(error))};
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return {std::nullopt, fmt::format("cannot stat: {}", std::strerror(errno))};
  if (!S_ISREG(st.st_mode)) return {std::nullopt, not_regular(st.st_mode)};
  if (auto problem = ownership_problem(st, "")) return {std::nullopt, std::move(*problem)};
  if (st.st_size == 0) return {std::nullopt, "empty file"};
  if (auto problem = elf_problem(fd.get(), st.st_size)) return {std::nullopt, std::move(*problem)};
  return {CheckedFile{std::move(fd), st.st_size}, {}};
}

std::optional<std::string> elf_problem(int fd, off_t file_size) {
  const auto size = static_cast<std::uint64_t>(file_size);
  std::array<unsigned char, EI_NIDENT> ident{};
  const auto head = static_cast<std::size_t>(std::min<std::uint64_t>(size, EI_NIDENT));
  if (!read_exactly(fd, ident.data(), head, 0) || head < SELFMAG ||
      std::memcmp(ident.data(), ELFMAG, SELFMAG) != 0)
    return "not an ELF file (no ELF magic number at its start)";
  if (head < EI_NIDENT) return truncated(EI_NIDENT, file_size);
  if (ident[EI_CLASS] != ELFCLASS64 || ident[EI_DATA] != ELFDATA2LSB) {
    return fmt::format(
        "wrong architecture: a {}-bit {}-endian ELF file, this host is 64-bit little-endian {}",
        ident[EI_CLASS] == ELFCLASS32 ? 32 : 64, ident[EI_DATA] == ELFDATA2MSB ? "big" : "little",
        machine_name(host_machine));
  }
  Elf64_Ehdr header{};
  if (size < sizeof header || !read_exactly(fd, &header, sizeof header, 0))
    return truncated(sizeof header, file_size);
  if (header.e_machine != host_machine)
    return fmt::format("wrong architecture: built for {}, this host is {}", machine_name(header.e_machine),
                       machine_name(host_machine));
  if (header.e_type != ET_DYN) {
    const char* type = header.e_type == ET_EXEC   ? "an executable"
                       : header.e_type == ET_REL  ? "a relocatable object (.o)"
                       : header.e_type == ET_CORE ? "a core dump"
                                                  : "of an unknown ELF type";
    return fmt::format("not an ELF shared object: the file is {}", type);
  }
  if (!fits(header.e_phoff, header.e_phnum, header.e_phentsize, size))
    return truncated(header.e_phoff + std::uint64_t{header.e_phnum} * header.e_phentsize, file_size);
  if (!fits(header.e_shoff, header.e_shnum, header.e_shentsize, size))
    return truncated(header.e_shoff + std::uint64_t{header.e_shnum} * header.e_shentsize, file_size);
  if (header.e_phentsize != sizeof(Elf64_Phdr))
    return "not an ELF shared object: unexpected program header size";
  std::uint64_t segments_end = 0;
  for (std::uint64_t i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr segment{};
    if (!read_exactly(fd, &segment, sizeof segment, static_cast<off_t>(header.e_phoff + i * sizeof segment)))
      return truncated(header.e_phoff + (i + 1) * sizeof segment, file_size);
    if (segment.p_type == PT_LOAD && !fits(segment.p_offset, 1, segment.p_filesz, size))
      return truncated(segment.p_offset + segment.p_filesz, file_size);
    segments_end = std::max(segments_end, end_of(segment.p_offset, segment.p_filesz));
  }
  return trailing_bytes_problem(fd, header, size, segments_end);
}

namespace {

bool write_all(int fd, const unsigned char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

std::string naming_file(std::string text, std::string_view proc_name, const std::filesystem::path& path) {
  const std::string name = path.string();
  for (auto at = text.find(proc_name); at != std::string::npos; at = text.find(proc_name, at + name.size()))
    text.replace(at, proc_name.size(), name);
  return text;
}

std::optional<std::string> sha256_hex(int fd, int copy_to) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return std::nullopt;
  std::array<unsigned char, 64 * 1024> buffer{};
  off_t offset = 0;
  for (;;) {
    const ssize_t n = pread(fd, buffer.data(), buffer.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    const auto size = static_cast<std::size_t>(n);
    if (EVP_DigestUpdate(ctx.get(), buffer.data(), size) != 1) return std::nullopt;
    if (copy_to >= 0 && !write_all(copy_to, buffer.data(), size)) return std::nullopt;
    offset += n;
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &length) != 1) return std::nullopt;
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

}  // namespace taskhive::detail
