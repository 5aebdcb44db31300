#pragma once
// Probe before load (issue 4): runs plugins' constructors and entry functions in a child process,
// taskhive-probe (apps/taskhive/probe_main.cpp), so a plugin that crashes, exits or hangs there is refused
// and the host never maps it.

#include <chrono>
#include <filesystem>
#include <optional>
#include <vector>

#include "taskhive/loader.hpp"

namespace taskhive::detail {

/// One checked plugin file to probe: its open descriptor (inherited by the child) and the record to fill.
struct ProbeJob {
  int fd = -1;
  PluginRecord* record = nullptr;
};

/// The probe executable to run: `configured` if set, else $TASKHIVE_PROBE, else taskhive-probe next to the
/// running executable, else the one this library was built with, else the installed one.
std::filesystem::path probe_executable(const std::optional<std::filesystem::path>& configured);

/// Probes every job, many per child process, in order. Each record ends up `available` with its descriptor
/// copied, or `refused` with one reason: the descriptor's problem, or "crashed during probe: signal N (...)",
/// "exited during probe with status N", "probe timed out after T". After a crash, exit or timeout the child
/// is reaped and a new one continues with the remaining jobs. Safe to call from a multi-threaded host: the
/// child is started with posix_spawn (no code of ours runs between fork and exec).
void probe_plugins(const std::vector<ProbeJob>& jobs, const std::filesystem::path& executable,
                   std::chrono::milliseconds timeout);

}  // namespace taskhive::detail
