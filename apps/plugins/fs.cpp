// fs: the file-system sample plugin (issue 6).
//   source "walk":   one item per regular file under a root, in a deterministic order
//   task "remove":   removes a file, or a tree with recursive: true (workflow clean-up)
//   task "copy":     copies a file or a tree (workflow set-up)
//
// @code
//   pipeline:
//     source: {name: files, uses: fs.walk, params: {root: /srv/data, include: "*.log", exclude: ".git"}}
//   workflow task: {name: clean, uses: fs.remove, params: {path: /tmp/out, recursive: true}, if: always}
// @endcode
//
// How a path travels. A path is any bytes but NUL; metadata strings must be UTF-8 (plugin_abi.h). So an item
// of fs.walk carries:
//   bytes          the path, raw: what a stage that opens the file uses (hash.file does)
//   "path"         the same path, when it is valid UTF-8
//   "path_base64"  instead of "path" when it is not: base64 of the raw bytes (bytes_text.hpp)
//   "size"         st_size, decimal
// The path is the root as given, "/", then the path below it, as `find ROOT -type f` prints it.

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <taskhive/plugin.hpp>

#include "bytes_text.hpp"
#include "comma_list.hpp"

namespace {

namespace plugin = taskhive::plugin;
using taskhive_samples::printable;
using taskhive_samples::split_comma_list;

// Whether `relative` (the path below the root) or, for a pattern without '/', its last component matches.
// A pattern without '/' names entries anywhere, as find -name does ("*.log", ".git"); one with '/' is
// matched against the whole relative path, '*' crossing '/' ("src/*.cpp" also takes src/a/b.cpp).
bool matches_any(const std::vector<std::string>& patterns, const std::string& relative) {
  const auto slash = relative.rfind('/');
  const char* base = relative.c_str() + (slash == std::string::npos ? 0 : slash + 1);
  for (const auto& p : patterns) {
    const bool whole = p.find('/') != std::string::npos;
    if (fnmatch(p.c_str(), whole ? relative.c_str() : base, 0) == 0) return true;
  }
  return false;
}

std::string errno_text(int err) {
  return std::strerror(err);
}

class Walk {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"root", TASKHIVE_PARAM_STRING, 1, nullptr, "the directory to walk (a regular file: just that file)"},
      {"include", TASKHIVE_PARAM_STRING, 0, "",
       "comma-separated globs; when given, only files matching one are emitted (no '/': the file name; "
       "with '/': the path below root)"},
      {"exclude", TASKHIVE_PARAM_STRING, 0, "",
       "comma-separated globs, matched like include against files and directories; an excluded directory "
       "is not entered"},
      {"follow_symlinks", TASKHIVE_PARAM_BOOL, 0, "false",
       "follow symbolic links to files and directories (loops are reported, not followed)"},
      {"max_depth", TASKHIVE_PARAM_INT, 0, "-1",
       "as find -maxdepth: 1 = only the root's own entries; -1 = unlimited"}};

  explicit Walk(const plugin::Params& params)
      : root_(params.get_or("root", "")),
        include_(split_comma_list(params.get_or("include", ""))),
        exclude_(split_comma_list(params.get_or("exclude", ""))),
        follow_(params.get_or("follow_symlinks", "false") == "true"),
        max_depth_(params.get_int("max_depth", -1, -1, std::numeric_limits<int>::max())) {
    if (root_.empty()) throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "parameter \"root\" is required");
  }

  ~Walk() {
    for (auto& d : stack_) ::close(d.fd);
  }
  Walk(const Walk&) = delete;
  Walk& operator=(const Walk&) = delete;

  // One call: the next regular file emitted (true), an unreadable entry thrown as this call's item error
  // (the walk has already moved past it, so the next call goes on), or the end (false).
  bool process(plugin::Emitter& emit) {
    if (!started_) {
      started_ = true;
      return start(emit);
    }
    while (!stack_.empty()) {
      Dir& dir = stack_.back();
      if (dir.next == dir.names.size()) {
        ::close(dir.fd);
        stack_.pop_back();
        continue;
      }
      const std::string name = std::move(dir.names[dir.next++]);
      const std::string relative = dir.relative.empty() ? name : dir.relative + "/" + name;
      const std::string path = join(root_, relative);
      const long long depth = dir.depth + 1;

      struct stat st {};
      if (::fstatat(dir.fd, name.c_str(), &st, follow_ ? 0 : AT_SYMLINK_NOFOLLOW) != 0) {
        const int err = errno;
        // A dangling symlink while following is no file: find -L -type f skips it as well.
        if (follow_ && err == ENOENT && ::fstatat(dir.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode))
          continue;
        throw std::runtime_error("cannot stat " + printable(path) + ": " + errno_text(err));
      }
      if (!exclude_.empty() && matches_any(exclude_, relative)) continue;
      if (S_ISREG(st.st_mode)) {
        if (!include_.empty() && !matches_any(include_, relative)) continue;
        emit_file(emit, path, st);
        return true;
      }
      if (S_ISDIR(st.st_mode) && (max_depth_ < 0 || depth < max_depth_)) {
        enter(dir.fd, name, relative, path, depth, st);  // may throw; the walk goes on with the next entry
      }
      // Anything else (a symlink not followed, a FIFO, a socket, a device) is not a regular file: skipped,
      // as find -type f skips it, and never opened, so a FIFO cannot block the walk.
    }
    return false;
  }

 private:
  struct Dir {
    int fd;
    std::string relative;  // below the root; "" for the root
    long long depth;       // the root is 0
    std::vector<std::string> names;
    std::size_t next = 0;
    dev_t dev;
    ino_t ino;
  };

  static std::string join(const std::string& root, const std::string& relative) {
    if (relative.empty()) return root;
    return root.back() == '/' ? root + relative : root + "/" + relative;
  }

  // The first call: the root, a directory to walk or a single file.
  bool start(plugin::Emitter& emit) {
    struct stat st {};
    if (::fstatat(AT_FDCWD, root_.c_str(), &st, 0) != 0)  // the root itself is followed, as find does
      throw std::runtime_error("cannot stat root " + printable(root_) + ": " + errno_text(errno));
    if (S_ISREG(st.st_mode)) {
      if (include_.empty() || matches_any(include_, root_)) emit_file(emit, root_, st);
      return true;
    }
    if (!S_ISDIR(st.st_mode) || max_depth_ == 0) return false;  // -maxdepth 0 of a directory: nothing
    enter(AT_FDCWD, root_, "", root_, 0, st);
    return true;  // nothing emitted yet: the host asks again
  }

  // Opens a directory and reads its names, sorted (byte order, so the walk is the same on every run and
  // locale). O_NONBLOCK|O_DIRECTORY: should the entry have been swapped for a FIFO since its stat, the open
  // fails instead of blocking.
  void enter(int parent_fd, const std::string& name, const std::string& relative, const std::string& path,
             long long depth, const struct stat& st) {
    for (const auto& d : stack_)
      if (d.dev == st.st_dev && d.ino == st.st_ino)
        throw std::runtime_error("file system loop at " + printable(path) + ": not entered");
    // The root is followed, as start() stat'ed it: a root that is a link to a directory is walked.
    const int flags =
        O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC | (follow_ || depth == 0 ? 0 : O_NOFOLLOW);
    const int fd = ::openat(parent_fd, name.c_str(), flags);
    if (fd < 0)
      throw std::runtime_error("cannot open directory " + printable(path) + ": " + errno_text(errno));
    const int list_fd = ::dup(fd);  // fdopendir owns what it gets; the walk keeps `fd` for openat/fstatat
    DIR* dir = list_fd < 0 ? nullptr : ::fdopendir(list_fd);
    if (!dir) {
      const int err = errno;
      if (list_fd >= 0) ::close(list_fd);
      ::close(fd);
      throw std::runtime_error("cannot read directory " + printable(path) + ": " + errno_text(err));
    }
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* e = ::readdir(dir)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        names.emplace_back(e->d_name);
      errno = 0;
    }
    const int err = errno;
    ::closedir(dir);
    if (err != 0) {
      ::close(fd);
      throw std::runtime_error("cannot read directory " + printable(path) + ": " + errno_text(err));
    }
    std::sort(names.begin(), names.end());
    stack_.push_back(Dir{fd, relative, depth, std::move(names), 0, st.st_dev, st.st_ino});
  }

  static void emit_file(plugin::Emitter& emit, const std::string& path, const struct stat& st) {
    const std::string size = std::to_string(static_cast<std::uint64_t>(st.st_size));
    if (taskhive_samples::valid_utf8(path)) {
      emit(path, {{"path", path.c_str()}, {"size", size.c_str()}});
    } else {
      const std::string encoded = taskhive_samples::base64_encode(path);
      emit(path, {{"path_base64", encoded.c_str()}, {"size", size.c_str()}});
    }
  }

  std::string root_;
  std::vector<std::string> include_;
  std::vector<std::string> exclude_;
  bool follow_;
  long long max_depth_;
  bool started_ = false;
  // The open directories from the root down: an explicit stack, no recursion. One descriptor per level, so
  // paths longer than PATH_MAX are walked; a tree deeper than the open-file limit gets item errors (EMFILE)
  // below that depth, not a crash.
  std::vector<Dir> stack_;
};

// Refuses the paths a slip in a config would make disastrous.
void check_not_dangerous(const std::string& path, const char* param) {
  if (path.empty()) throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, std::string(param) + " is empty");
  std::error_code ec;
  const auto absolute = std::filesystem::weakly_canonical(path, ec);
  if (!ec && absolute == absolute.root_path())
    throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, std::string(param) + " is the file-system root");
}

struct Remove {
  static constexpr taskhive_param_decl parameters[] = {
      {"path", TASKHIVE_PARAM_STRING, 1, nullptr, "what to remove; already absent is success"},
      {"recursive", TASKHIVE_PARAM_BOOL, 0, "false", "remove a directory and everything in it"}};

  // Absent is success, so a clean-up task can run whether or not the steps before it got as far as
  // creating the path. Symbolic links are removed, never followed.
  static void run(const plugin::Params& params) {
    const std::string path = params.get_or("path", "");
    check_not_dangerous(path, "path");
    std::error_code ec;
    if (params.get_or("recursive", "false") == "true")
      std::filesystem::remove_all(path, ec);
    else
      std::filesystem::remove(path, ec);
    if (ec) throw std::runtime_error("cannot remove " + printable(path) + ": " + ec.message());
  }
};

// What a recursive copy could not copy: how many entries, and why the first one failed.
struct CopyFailures {
  std::size_t count = 0;
  std::string first;

  void note(const std::filesystem::path& path, const std::string& why) {
    if (count++ == 0) first = printable(path.native()) + ": " + why;
  }
};

// Copies a regular file's bytes to `to`, as cp does: a new file gets the source's permission bits less the
// umask (never setuid, setgid or sticky), an existing one keeps its mode. Never writes through a symbolic
// link in the destination: a link there is replaced (O_NOFOLLOW refuses it, it is removed, the open is
// retried).
void copy_file_bytes(const std::filesystem::path& from, const std::filesystem::path& to, mode_t mode,
                     CopyFailures& failures) {
  const int src = ::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (src < 0) return failures.note(from, errno_text(errno));
  struct stat st {};
  if (::fstat(src, &st) != 0 || !S_ISREG(st.st_mode)) {
    const int err = errno;
    ::close(src);
    return failures.note(from, S_ISREG(st.st_mode) ? errno_text(err) : "no longer a regular file");
  }
  // O_NONBLOCK: should a FIFO have taken the destination's place since copy_tree looked, the open must not
  // wait for a reader (for ever); anything but a regular file is then refused below.
  const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  int dst = ::open(to.c_str(), flags, mode & 0777);
  if (dst < 0 && errno == ELOOP && ::unlink(to.c_str()) == 0) dst = ::open(to.c_str(), flags, mode & 0777);
  if (dst < 0) {
    const int err = errno;
    ::close(src);
    return failures.note(to, errno_text(err));
  }
  if (struct stat out{}; ::fstat(dst, &out) != 0 || !S_ISREG(out.st_mode)) {
    ::close(src);
    ::close(dst);
    return failures.note(to, "not a regular file: not written over");
  }
  std::vector<char> buffer(128 * 1024);
  int err = 0, read_err = 0;
  for (;;) {
    const ssize_t n = ::read(src, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0) read_err = errno;
      break;
    }
    for (ssize_t done = 0; done < n && err == 0;) {
      const ssize_t w = ::write(dst, buffer.data() + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno != EINTR) err = errno;
      if (w > 0) done += w;
    }
    if (err != 0) break;
  }
  ::close(src);
  if (::close(dst) != 0 && err == 0) err = errno;
  if (read_err != 0) return failures.note(from, errno_text(read_err));
  if (err != 0) failures.note(to, errno_text(err));
}

// Copies `from` to `to` as `cp -r` does, with one difference: a directory is copied INTO an existing `to`
// (merged, as `cp -rT`), not below it. A directory's entries are copied, recursively; a file's bytes (see
// copy_file_bytes); a symbolic link as a link, not followed; a FIFO, device or socket made anew (mknod: a
// device needs the privilege). As cp, it refuses to put a directory where a non-directory is (a symbolic
// link to a directory included: it never copies through a link out of `to`) and a non-directory where a
// directory is. An entry that fails is noted and the copy goes on with the rest.
void copy_tree(const std::filesystem::path& from, const std::filesystem::path& to, CopyFailures& failures) {
  namespace fs = std::filesystem;
  struct stat source {};
  if (::lstat(from.c_str(), &source) != 0) return failures.note(from, errno_text(errno));
  struct stat target {};
  const bool exists = ::lstat(to.c_str(), &target) == 0;
  if (!exists && errno != ENOENT) return failures.note(to, errno_text(errno));
  if (S_ISDIR(source.st_mode)) {
    if (exists && !S_ISDIR(target.st_mode))
      return failures.note(to, "cannot overwrite a non-directory with a directory");
    // A new directory is made writable by us while it is filled (its source may be read-only), then given
    // the source's permission bits less the umask, as cp does; an existing one keeps its mode.
    mode_t final_mode = 0;
    if (!exists) {
      if (::mkdir(to.c_str(), source.st_mode & 0777) != 0)
        return failures.note(to, "cannot make the directory: " + errno_text(errno));
      struct stat made {};
      if (::stat(to.c_str(), &made) == 0) final_mode = made.st_mode & 07777;
      if ((final_mode & S_IRWXU) != S_IRWXU) ::chmod(to.c_str(), final_mode | S_IRWXU);
    }
    std::error_code ec;
    fs::directory_iterator it(from, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      copy_tree(it->path(), to / it->path().filename(), failures);
    }
    if (ec) failures.note(from, "cannot read the directory: " + ec.message());
    if (!exists && (final_mode & S_IRWXU) != S_IRWXU && ::chmod(to.c_str(), final_mode) != 0)
      failures.note(to, "cannot set its mode: " + errno_text(errno));
    return;
  }
  if (exists && S_ISDIR(target.st_mode))
    return failures.note(to, "cannot overwrite a directory with a non-directory");
  if (exists && target.st_dev == source.st_dev && target.st_ino == source.st_ino)
    return failures.note(to, "is the same file as " + printable(from.native()));  // O_TRUNC would empty it
  if (S_ISREG(source.st_mode)) {
    // cp would write into a FIFO or device there (and wait for a FIFO's reader); a copy is not a write.
    if (exists && !S_ISREG(target.st_mode) && !S_ISLNK(target.st_mode))
      return failures.note(to, "not a regular file: not written over");
    return copy_file_bytes(from, to, source.st_mode, failures);
  }
  // A link or a special file: made anew in place of whatever non-directory `to` is.
  if (exists && ::unlink(to.c_str()) != 0)
    return failures.note(to, "cannot replace it: " + errno_text(errno));
  if (S_ISLNK(source.st_mode)) {
    std::error_code ec;
    fs::copy_symlink(from, to, ec);
    if (ec) failures.note(from, ec.message());
    return;
  }
  if (::mknod(to.c_str(), source.st_mode & ~static_cast<mode_t>(S_ISUID | S_ISGID), source.st_rdev) != 0)
    failures.note(from, "cannot make " + printable(to.native()) + ": " + errno_text(errno));
}

struct Copy {
  static constexpr taskhive_param_decl parameters[] = {
      {"from", TASKHIVE_PARAM_STRING, 1, nullptr, "a file, or a directory copied with everything in it"},
      {"to", TASKHIVE_PARAM_STRING, 1, nullptr,
       "the destination; missing parent directories are made, existing files are overwritten"}};

  // As cp -r, except that a directory is merged into an existing `to` (see copy_tree); parents of `to` are
  // made (like install -D), so a workflow can copy into a work directory that does not exist yet. A file
  // copied onto an existing directory goes inside it, as cp's does.
  static void run(const plugin::Params& params) {
    const std::string from = params.get_or("from", "");
    const std::string to = params.get_or("to", "");
    if (from.empty() || to.empty())
      throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "from and to are required");
    namespace fs = std::filesystem;
    std::error_code ec;
    if (struct stat st{}; ::lstat(from.c_str(), &st) != 0)  // before anything of `to` is made
      throw std::runtime_error("cannot copy " + printable(from) + ": " + errno_text(errno));
    // As cp does: copying a directory into itself would copy the copy as it grows, until the names get too
    // long, and leave every level behind.
    if (fs::symlink_status(from, ec).type() == fs::file_type::directory) {  // a link is copied as a link
      const auto source = fs::weakly_canonical(from, ec);
      const auto target = ec ? fs::path() : fs::weakly_canonical(to, ec);
      const auto inside = target.lexically_relative(source);
      if (!ec && !inside.empty() && *inside.begin() != "..")
        throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "cannot copy a directory into itself: " +
                                                            printable(to) + " is inside " + printable(from));
    }
    ec.clear();
    if (const auto parent = fs::path(to).parent_path(); !parent.empty()) fs::create_directories(parent, ec);
    if (ec)
      throw std::runtime_error("cannot make the directory " + printable(fs::path(to).parent_path().string()) +
                               ": " + ec.message());
    fs::path target = to;
    // `to` itself, if a link to a directory, is followed (a work directory is often a link); links inside
    // the destination tree never are (see copy_tree).
    if (std::error_code probe; fs::is_symlink(fs::symlink_status(to, probe)) && fs::is_directory(to, probe)) {
      target = fs::canonical(to, probe);
      if (probe) throw std::runtime_error("cannot follow " + printable(to) + ": " + probe.message());
    }
    // A file (or link) onto an existing directory goes inside it.
    if (fs::symlink_status(from, ec).type() != fs::file_type::directory &&
        fs::symlink_status(target, ec).type() == fs::file_type::directory)
      target /= fs::path(from).filename();
    CopyFailures failures;
    copy_tree(from, target, failures);
    if (failures.count == 1)
      throw std::runtime_error("cannot copy " + printable(from) + " to " + printable(to) + ": " +
                               failures.first);
    if (failures.count > 1)
      throw std::runtime_error("cannot copy " + std::to_string(failures.count) + " entries of " +
                               printable(from) + " to " + printable(to) +
                               " (the rest was copied); the first: " + failures.first);
  }
};

}  // namespace

TASKHIVE_PLUGIN("fs", "1.0.0", "files: walk a tree; copy and remove for workflow steps",
                plugin::source<Walk>("walk", "one item per regular file under root, in sorted order"),
                plugin::task<Remove>("remove", "removes a file, or a tree with recursive: true"),
                plugin::task<Copy>("copy", "copies a file or a tree, overwriting"));
