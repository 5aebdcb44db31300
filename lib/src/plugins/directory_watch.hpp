#pragma once
// Watching plugin directories (issue 4, rescan): a thread that calls back when inotify reports a change in
// one of them, once the directory has settled, and/or on a fixed interval.

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

#include "file_checks.hpp"

namespace taskhive::detail {

class DirectoryWatch {
 public:
  /// Starts the thread. `on_change` runs on it, never concurrently with itself. With `use_inotify`, a
  /// creation, removal, rename, attribute change or finished write in a directory triggers it once no event
  /// came for `settle` (at most a second after the first); with an interval above zero, so does each
  /// interval. Throws std::system_error if inotify or the thread cannot be set up.
  DirectoryWatch(const std::vector<std::filesystem::path>& dirs, bool use_inotify,
                 std::chrono::milliseconds interval, std::chrono::milliseconds settle,
                 std::function<void()> on_change);
  ~DirectoryWatch();  ///< stops and joins the thread
  DirectoryWatch(const DirectoryWatch&) = delete;
  DirectoryWatch& operator=(const DirectoryWatch&) = delete;

 private:
  void run();
  void drain_events();

  FileDescriptor inotify_;
  FileDescriptor stop_;  // an eventfd
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds settle_;
  std::function<void()> on_change_;
  std::thread thread_;
};

}  // namespace taskhive::detail
