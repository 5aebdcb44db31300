// hash: the file-hashing sample plugin (issue 6).
//   transform "file": hashes the file an item names; emits the item with "sha256" (or "xxh64") and "size"
//
// @code
//   stages:
//     - {name: hash, uses: hash.file, params: {algorithm: sha256}, concurrency: unlimited, on_error: skip}
// @endcode
//
// The file is the item's bytes, the raw path fs.walk puts there (any bytes but NUL, so names that are not
// UTF-8 work too); an item without bytes falls back to its "path" metadata. The file is streamed through a
// fixed buffer, never loaded whole, so a file of any size takes the same memory. A file that cannot be opened
// or read, or is not a regular file, fails the item (the stage's on_error decides what happens next).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <xxhash.h>

#include <taskhive/plugin.hpp>

#include "bytes_text.hpp"
#include "regular_file.hpp"

namespace {

namespace plugin = taskhive::plugin;
using taskhive_samples::open_regular_file;
using taskhive_samples::printable;

// 128 KiB: large enough that the per-read cost vanishes next to hashing, small enough to stay in L2 with
// room for the hash state, and the read size at which Linux readahead already streams.
constexpr std::size_t kChunk = 128 * 1024;

// Closes a descriptor on every path out of hash_fd.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

class HashFile {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"algorithm", TASKHIVE_PARAM_STRING, 0, "sha256", "sha256 (OpenSSL EVP) or xxh64 (xxHash, seed 0)"}};

  explicit HashFile(const plugin::Params& params) : buffer_(kChunk) {
    const std::string algorithm = params.get_or("algorithm", "sha256");
    if (algorithm == "sha256") {
      sha_.reset(EVP_MD_CTX_new());
      if (!sha_) throw std::bad_alloc();
      key_ = "sha256";
    } else if (algorithm == "xxh64") {
      xxh_.reset(XXH64_createState());
      if (!xxh_) throw std::bad_alloc();
      key_ = "xxh64";
    } else {
      throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM,
                          "algorithm must be sha256 or xxh64, not \"" + printable(algorithm) + "\"");
    }
  }

  void process(const plugin::Item& in, plugin::Emitter& emit) {
    std::string path(in.text());
    if (path.empty()) path = in.metadata().get_or("path", "");
    if (path.empty()) throw std::runtime_error("the item names no file (no bytes, no \"path\")");

    FdCloser file{open_regular_file(path)};  // a FIFO in the file's place is refused, not waited on
    ::posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL);  // advice only: its failure changes nothing

    const auto [digest, size] = hash_fd(file.fd, path);

    // The item goes on with its metadata, "size" now the bytes hashed and the digest added.
    std::vector<taskhive_kv> meta;
    for (const auto& kv : in.metadata().pairs())
      if (std::strcmp(kv.key, "size") != 0 && kv.key != key_) meta.push_back(kv);
    const std::string size_text = std::to_string(size);
    meta.push_back({"size", size_text.c_str()});
    meta.push_back({key_.c_str(), digest.c_str()});
    emit(in.text(), plugin::KeyValues(meta.data(), meta.size()));
  }

 private:
  struct EvpFree {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
  };
  struct XxhFree {
    void operator()(XXH64_state_t* s) const noexcept { XXH64_freeState(s); }
  };

  [[noreturn]] static void fail(const char* what, const std::string& path, int err) {
    throw std::runtime_error(std::string(what) + " " + printable(path) + ": " + std::strerror(err));
  }

  // Reads fd to its end through the buffer; returns the lowercase hex digest and the bytes read.
  std::pair<std::string, std::uint64_t> hash_fd(int fd, const std::string& path) {
    if (sha_ && EVP_DigestInit_ex(sha_.get(), EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("EVP_DigestInit_ex failed");
    if (xxh_ && XXH64_reset(xxh_.get(), 0) != XXH_OK) throw std::runtime_error("XXH64_reset failed");
    std::uint64_t total = 0;
    for (;;) {
      const ssize_t n = ::read(fd, buffer_.data(), buffer_.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("cannot read", path, errno);
      }
      if (n == 0) break;
      total += static_cast<std::uint64_t>(n);
      if (sha_ && EVP_DigestUpdate(sha_.get(), buffer_.data(), static_cast<std::size_t>(n)) != 1)
        throw std::runtime_error("EVP_DigestUpdate failed");
      if (xxh_ && XXH64_update(xxh_.get(), buffer_.data(), static_cast<std::size_t>(n)) != XXH_OK)
        throw std::runtime_error("XXH64_update failed");
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    if (sha_) {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (EVP_DigestFinal_ex(sha_.get(), md, &len) != 1)
        throw std::runtime_error("EVP_DigestFinal_ex failed");
      for (unsigned int i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
      }
    } else {
      char text[17];
      std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(XXH64_digest(xxh_.get())));
      out = text;  // the form xxhsum -H64 prints
    }
    return {out, total};
  }

  std::vector<unsigned char> buffer_;  // one per instance: instances run one item at a time
  std::unique_ptr<EVP_MD_CTX, EvpFree> sha_;
  std::unique_ptr<XXH64_state_t, XxhFree> xxh_;
  std::string key_;
};

}  // namespace

TASKHIVE_PLUGIN("hash", "1.0.0", "file digests: sha256 (OpenSSL) and xxh64 (xxHash), streamed",
                plugin::transform<HashFile>("file",
                                            "hashes the file an item names; adds its digest and size"));
