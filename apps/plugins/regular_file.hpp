#pragma once
// Opening the file an item names, for reading: every sample plugin that reads files opens them here.
//
// @code
//   const int fd = open_regular_file(path);  // or throws "cannot open PATH: ..." / "PATH is not a regular
//   file"
// @endcode

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "bytes_text.hpp"

namespace taskhive_samples {

/// Opens `path` read-only and returns the descriptor, which the caller closes; throws std::runtime_error
/// naming the path if it cannot be opened or is not a regular file.
///
/// fs.walk lists regular files, but a file may be replaced by the time a later stage opens it, and open() of
/// a FIFO waits for a writer: a worker, and the run's Ctrl-C with it, would wait for ever. So the file is
/// opened with O_NONBLOCK (which makes open() of a FIFO return at once), anything but a regular file is
/// refused, and the flag is then cleared so that reads behave as usual.
inline int open_regular_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw std::runtime_error("cannot open " + printable(path) + ": " + std::strerror(errno));
  struct stat st {};
  int error = 0;
  if (::fstat(fd, &st) != 0) {
    error = errno;
  } else if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(printable(path) + " is not a regular file");
  } else if (const int flags = ::fcntl(fd, F_GETFL);
             flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    error = errno;
  }
  if (error != 0) {
    ::close(fd);
    throw std::runtime_error("cannot open " + printable(path) + ": " + std::strerror(error));
  }
  return fd;
}

}  // namespace taskhive_samples
