#pragma once
// Watching plugin directories (issue 4, rescan): a thread that calls back when inotify reports a change in
// one of them, once the directory has settled, and/or on a fixed interval.

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
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
  ///
  /// `dirs` are the directories as configured, not resolved: the watch follows them when they are replaced.
  /// Each one's parent is watched for its name (a directory removed and made again, or a symlink switched
  /// to another release: `current -> v2` renamed over `current -> v1`), and after each callback the watches
  /// are set again on what the names lead to now.
  DirectoryWatch(std::vector<std::filesystem::path> dirs, bool use_inotify,
                 std::chrono::milliseconds interval, std::chrono::milliseconds settle,
                 std::function<void()> on_change);
  ~DirectoryWatch();  ///< stops and joins the thread
  DirectoryWatch(const DirectoryWatch&) = delete;
  DirectoryWatch& operator=(const DirectoryWatch&) = delete;

 private:
  void run();
  /// Reads the pending events; true if one of them matters (anything in a watched directory, or its name
  /// coming, going or being replaced in a parent).
  bool drain_events();
  /// (Re)sets the watches on the directories the configured paths lead to now, and on their parents.
  /// Returns the configured directories it could not watch.
  std::vector<std::filesystem::path> arm();

  // What a watch descriptor stands for: a plugin directory (every event counts), and/or the parent of one or
  // more of them (only events naming them count).
  struct Watched {
    bool directory = false;
    std::vector<std::string> names;
  };

  std::vector<std::filesystem::path> dirs_;  // absolute, as configured
  std::map<int, Watched> watched_;           // only the watch thread touches it (after the constructor)
  FileDescriptor inotify_;
  FileDescriptor stop_;  // an eventfd
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds settle_;
  std::function<void()> on_change_;
  std::thread thread_;
};

}  // namespace taskhive::detail
