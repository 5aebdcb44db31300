#pragma once
// Probe before load (issue 4): runs plugins' constructors and entry functions in a child process,
// taskhive-probe (apps/taskhive/probe_main.cpp), so a plugin that crashes, exits or hangs there is refused
// and the host never maps it.
//
// A child serves many plugins, one at a time: the host passes each checked file's descriptor over a Unix
// socket (SCM_RIGHTS) and reads one JSON line back. So the probe streams, one plugin per call, which is what
// lets it be a node of the scan graph, and a pool of sessions probes in parallel.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "file_checks.hpp"
#include "taskhive/loader.hpp"

namespace taskhive::detail {

/// The probe executable to run: `configured` if set, else $TASKHIVE_PROBE, else taskhive-probe next to the
/// running executable, else the one this library was built with, else the installed one.
std::filesystem::path probe_executable(const std::optional<std::filesystem::path>& configured);

/// One probe child and the conversation with it. Not thread-safe: one probe at a time (see ProbePool).
///
/// @code
///   ProbeSession session(probe_executable(std::nullopt), 5s);
///   session.probe(file.fd.get(), record);   // record: available with its descriptor copied, or refused
/// @endcode
class ProbeSession {
 public:
  ProbeSession(std::filesystem::path executable, std::chrono::milliseconds timeout);
  ~ProbeSession();
  ProbeSession(const ProbeSession&) = delete;
  ProbeSession& operator=(const ProbeSession&) = delete;

  /// Probes the plugin open on `fd` (a checked file) and fills `record`: `available` with name, version,
  /// description and kinds, or `refused` with one reason: the descriptor's problem, "crashed during probe:
  /// signal N (...)", "exited during probe with status N" or "probe timed out after T". The child is started
  /// on first use and replaced after a crash, exit or timeout. A crash or exit is confirmed in a fresh child
  /// before the plugin is blamed (a plugin probed earlier in the same child may have left a thread behind
  /// that killed it). If no child can be started, the record is refused ("cannot start the plugin probe
  /// ...") rather than left for an unprobed load.
  void probe(int fd, PluginRecord& record);

 private:
  enum class Outcome { answered, died, timed_out, unusable };
  bool start(std::string& why);
  void stop(bool kill_it);
  Outcome attempt(int fd, PluginRecord& record, std::optional<int>& wait_status);

  std::filesystem::path executable_;
  std::chrono::milliseconds timeout_;
  pid_t pid_ = -1;  // also the id of the child's own process group, which holds whatever it forks
  FileDescriptor
      exit_;  // a pidfd of the child: readable once it has ended (none if the kernel lacks pidfd_open)
  FileDescriptor socket_;
  std::string buffer_;
  std::size_t served_ = 0;  // plugins probed by the current child
};

/// A fixed set of probe sessions shared by concurrent callers; each probe() takes a free one.
class ProbePool {
 public:
  ProbePool(std::filesystem::path executable, std::chrono::milliseconds timeout, std::size_t size);
  void probe(int fd, PluginRecord& record);

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<ProbeSession>> idle_;
  std::filesystem::path executable_;
  std::chrono::milliseconds timeout_;
};

}  // namespace taskhive::detail
