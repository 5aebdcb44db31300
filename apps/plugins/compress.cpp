// compress: zstd-compresses files into an output directory, for pipelines such as configs/compress-logs.yaml.
//
// @code
//   source: {name: logs, uses: fs.walk, params: {root: /var/log/app, include: "*.log"}}
//   stages:
//     - {name: zstd, uses: compress.zstd, params: {out_dir: /backup, root: /var/log/app, level: 19}}
//   sink: {name: report, uses: out.jsonl}   # path, size, compressed_size, output
// @endcode
//
//   transform "zstd":  the file an item names (metadata "path", else the item's bytes, the raw path fs.walk
//                      gives) becomes OUT_DIR/RELATIVE.zst, where RELATIVE is the path below `root` (or the
//                      path itself, made relative, without `root`). Streamed through ZSTD_compressStream2 in
//                      chunks of ZSTD's preferred sizes: never loads a whole file. `zstd -d` restores it.
//
// The output is written to a temporary name in its directory and renamed into place, so a reader never sees a
// half-written .zst and a failed item leaves nothing behind. The item emitted keeps the input's bytes and
// metadata ("path" or "path_base64" among it) and sets "size", "compressed_size" (decimal bytes) and
// "output" ("output_base64" when the name is not UTF-8, as bytes_text.hpp describes).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <taskhive/plugin.hpp>

#include "bytes_text.hpp"
#include "regular_file.hpp"

namespace {

namespace plugin = taskhive::plugin;
namespace fs = std::filesystem;
using taskhive_samples::base64_encode;
using taskhive_samples::open_regular_file;
using taskhive_samples::printable;
using taskhive_samples::valid_utf8;

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::system_category().message(errno));
}

std::string fmt_hex(std::uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

class Fd {
 public:
  Fd(const std::string& path, int flags, mode_t mode = 0)
      : path_(path), fd_(::open(path.c_str(), flags, mode)) {
    if (fd_ < 0) fail_errno(printable(path_));
  }
  /// Takes `fd`, open on `path`, to close.
  static Fd adopt(const std::string& path, int fd) { return Fd(Adopted{}, path, fd); }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

  std::size_t read(void* data, std::size_t size) {
    for (;;) {
      const ssize_t n = ::read(fd_, data, size);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) fail_errno(printable(path_));
    }
  }
  void write_all(const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t n = ::write(fd_, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_errno(printable(path_));
      }
      p += n;
      size -= static_cast<std::size_t>(n);
    }
  }
  void close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) fail_errno(printable(path_));
  }

 private:
  struct Adopted {};
  Fd(Adopted, const std::string& path, int fd) : path_(path), fd_(fd) {}

  std::string path_;
  int fd_;
};

// Removes a temporary file unless the rename took it.
struct TempFile {
  explicit TempFile(std::string p) : path(std::move(p)) {}
  TempFile(TempFile&& other) noexcept : path(std::move(other.path)), kept(std::exchange(other.kept, true)) {}
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile() {
    if (!kept) ::unlink(path.c_str());
  }

  std::string path;
  bool kept = false;
};

// A new, empty file of its own in `dir`, for the output to be written to and then renamed into place. Its
// name is short (not OUTPUT.tmp...: a name a few bytes under NAME_MAX would be refused) and random, so that
// parallel instances and other runs, in other PID namespaces too, never pick the same one; O_EXCL makes sure,
// and the TempFile that will remove it exists only once the file is ours.
std::pair<TempFile, Fd> create_temp(const fs::path& dir) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  for (int attempt = 0;; ++attempt) {
    const std::string name = fmt_hex(random()) + ".zst.tmp";
    const std::string path = (dir / ("." + name)).native();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return {TempFile{path}, Fd::adopt(path, fd)};
    if (errno != EEXIST || attempt == 16) fail_errno(printable(path));
  }
}

struct CctxFree {
  void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
};

std::size_t check_zstd(std::size_t rc, const std::string& what) {
  if (ZSTD_isError(rc)) throw std::runtime_error(printable(what) + ": zstd: " + ZSTD_getErrorName(rc));
  return rc;
}

class Zstd {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"out_dir", TASKHIVE_PARAM_STRING, 1, nullptr, "where the .zst files go (created as needed)"},
      {"level", TASKHIVE_PARAM_INT, 0, "3", "the zstd compression level, 1 to 19 (22 with --ultra's memory)"},
      {"root", TASKHIVE_PARAM_STRING, 0, "",
       "the walk's root: a file's path below it is kept under out_dir; empty: the whole path is kept"}};

  explicit Zstd(const plugin::Params& params)
      : out_dir_(params.get_or("out_dir", "")),
        root_(fs::path(params.get_or("root", "")).lexically_normal()),
        level_(static_cast<int>(params.get_int("level", 3, ZSTD_minCLevel(), ZSTD_maxCLevel()))),
        cctx_(ZSTD_createCCtx()),
        in_(ZSTD_CStreamInSize()),
        out_(ZSTD_CStreamOutSize()) {
    if (out_dir_.empty()) throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "out_dir is required");
    if (!cctx_) throw std::bad_alloc();
  }

  void process(const plugin::Item& in, plugin::Emitter& emit) {
    const auto meta = in.metadata();
    const std::string path(meta.get("path").value_or(in.text()));
    const fs::path output = fs::path(out_dir_) / (relative(path).native() + ".zst");
    fs::create_directories(output.parent_path());

    // A FIFO in the file's place is refused, not waited on (see open_regular_file).
    Fd src = Fd::adopt(path, open_regular_file(path));
    auto [temp, dst] = create_temp(output.parent_path());

    check_zstd(ZSTD_CCtx_reset(cctx_.get(), ZSTD_reset_session_and_parameters), path);
    check_zstd(ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_compressionLevel, level_), path);
    check_zstd(ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_checksumFlag, 1), path);
    std::uint64_t size = 0, compressed = 0;
    for (;;) {
      const std::size_t n = src.read(in_.data(), in_.size());
      size += n;
      const ZSTD_EndDirective mode = n == 0 ? ZSTD_e_end : ZSTD_e_continue;
      ZSTD_inBuffer input{in_.data(), n, 0};
      // Drain until this chunk is consumed (continue) or the frame is complete (end: rc 0).
      for (;;) {
        ZSTD_outBuffer output_buffer{out_.data(), out_.size(), 0};
        const std::size_t rc =
            check_zstd(ZSTD_compressStream2(cctx_.get(), &output_buffer, &input, mode), path);
        dst.write_all(out_.data(), output_buffer.pos);
        compressed += output_buffer.pos;
        if (mode == ZSTD_e_end ? rc == 0 : input.pos == input.size) break;
      }
      if (n == 0) break;
    }
    dst.close();
    if (::rename(temp.path.c_str(), output.c_str()) != 0)
      fail_errno("renaming to " + printable(output.native()));
    temp.kept = true;

    std::vector<taskhive_kv> out_meta;
    for (const auto& kv : meta.pairs()) {
      const std::string_view key = kv.key;
      if (key != "size" && key != "compressed_size" && key != "output" && key != "output_base64")
        out_meta.push_back(kv);
    }
    const std::string size_text = std::to_string(size), compressed_text = std::to_string(compressed);
    out_meta.push_back({"size", size_text.c_str()});
    out_meta.push_back({"compressed_size", compressed_text.c_str()});
    // Metadata must be UTF-8: an output name that is not (its input's was not) goes as output_base64.
    const bool utf8 = valid_utf8(output.native());
    const std::string output_text = utf8 ? output.native() : base64_encode(output.native());
    out_meta.push_back({utf8 ? "output" : "output_base64", output_text.c_str()});
    emit(in.text(), plugin::KeyValues(out_meta.data(), out_meta.size()));
  }

 private:
  // The path below root_ when `path` is under it; else the path itself without its leading "/" or "..", so
  // that nothing lands outside out_dir.
  fs::path relative(const std::string& path) const {
    const fs::path p = fs::path(path).lexically_normal();
    if (!root_.empty()) {
      const fs::path rel = p.lexically_relative(root_);
      if (!rel.empty() && *rel.begin() != ".." && rel != ".") return rel;
    }
    fs::path kept;
    for (const auto& part : p.relative_path())
      if (part != ".." && part != ".") kept /= part;
    if (kept.empty()) throw std::runtime_error(printable(path) + ": no file name to write under out_dir");
    return kept;
  }

  std::string out_dir_;
  fs::path root_;
  int level_;
  std::unique_ptr<ZSTD_CCtx, CctxFree> cctx_;
  std::vector<char> in_, out_;
};

}  // namespace

TASKHIVE_PLUGIN("compress", "1.0.0", "zstd compression of files into an output directory",
                plugin::transform<Zstd>("zstd", "compresses the file an item names to OUT_DIR/RELATIVE.zst"));
