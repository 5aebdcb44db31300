#include "probe.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "file_checks.hpp"
#include "kind_json.hpp"

extern char** environ;  // NOLINT: POSIX declares it nowhere

namespace taskhive::detail {

namespace {

using Clock = std::chrono::steady_clock;

// How long a child may take to start and say hello (exec, dynamic linking; slow under sanitizers). Not the
// per-plugin limit: that starts once the child is up, so a plugin is never blamed for the probe's start-up.
constexpr std::chrono::seconds startup_limit{30};

// At most this many files per child: bounds argv and the descriptors one child holds.
constexpr std::size_t max_batch = 256;

std::string format_limit(std::chrono::milliseconds limit) {
  if (limit.count() % 1000 == 0) return fmt::format("{} s", limit.count() / 1000);
  return fmt::format("{} ms", limit.count());
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// Fills `record` from one result line of the child; false if the line is not a result for `fd`.
bool apply_result(const std::string& line, int fd, PluginRecord& record) {
  const auto result = nlohmann::json::parse(line, nullptr, false);
  if (result.is_discarded() || !result.is_object() || result.value("fd", -1) != fd) return false;
  try {
    if (result.at("ok").get<bool>()) {
      record.name = result.at("name").get<std::string>();
      record.version = result.at("version").get<std::string>();
      record.description = result.at("description").get<std::string>();
      record.kinds = kinds_from_json(result.at("kinds"));
      record.status = PluginStatus::available;
      record.reason.clear();
    } else {
      record.name = result.value("name", "");
      // The child dlopened /proc/self/fd/N, the same N as here; people want the file's path.
      record.reason = replace_all(result.at("reason").get<std::string>(), fmt::format("/proc/self/fd/{}", fd),
                                  record.path.string());
    }
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return true;
}

struct Child {
  pid_t pid = -1;
  FileDescriptor out;  // read end of the child's stdout
};

// Starts a child probing `jobs`; nothing on failure (errno-style code in `error`).
std::optional<Child> spawn(std::span<const ProbeJob> jobs, const std::filesystem::path& executable,
                           int& error) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    error = errno;
    return std::nullopt;
  }
  FileDescriptor read_end(pipe_fds[0]), write_end(pipe_fds[1]);

  std::vector<std::string> args{executable.string(), "--protocol", "1"};
  for (const auto& job : jobs) args.push_back(std::to_string(job.fd));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // The child's stderr goes nowhere: a crashing plugin (or a sanitizer's report about it) must not clutter
  // the host's output; the reason the host records says what happened.
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  // dup2 of a descriptor onto itself clears its close-on-exec flag (POSIX 2024; glibc since 2.29): the
  // checked files are O_CLOEXEC here, so no other child of the host inherits them, but this one must.
  for (const auto& job : jobs) posix_spawn_file_actions_adddup2(&actions, job.fd, job.fd);
  pid_t pid = -1;
  error = posix_spawn(&pid, executable.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) return std::nullopt;
  return Child{pid, std::move(read_end)};
}

// Reads one line from the child within `deadline`. Returns the line, or nothing on end of file (the child is
// gone) or timeout (`timed_out` set).
std::optional<std::string> read_line(int fd, std::string& buffer, Clock::time_point deadline,
                                     bool& timed_out) {
  timed_out = false;
  for (;;) {
    if (const auto newline = buffer.find('\n'); newline != std::string::npos) {
      std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      return line;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      return std::nullopt;
    }
    pollfd p{fd, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 60'000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;  // loop re-checks the deadline
    char chunk[4096];
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

// Waits for the child; kills it first if `kill_it`. Returns the wait status.
int reap(pid_t pid, bool kill_it) {
  if (kill_it) ::kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string death_reason(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return fmt::format("crashed during probe: signal {} ({})", sig, name ? name : "unknown signal");
  }
  if (WIFEXITED(status)) return fmt::format("exited during probe with status {}", WEXITSTATUS(status));
  return "probe failed: child stopped unexpectedly";
}

}  // namespace

std::filesystem::path probe_executable(const std::optional<std::filesystem::path>& configured) {
  if (configured) return *configured;
  if (const char* env = std::getenv("TASKHIVE_PROBE"); env && *env) return env;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto beside = self.parent_path() / "taskhive-probe";
    if (std::filesystem::exists(beside, ec)) return beside;
  }
#ifdef TASKHIVE_PROBE_BUILD_PATH
  if (std::filesystem::exists(TASKHIVE_PROBE_BUILD_PATH, ec)) return TASKHIVE_PROBE_BUILD_PATH;
#endif
#ifdef TASKHIVE_PROBE_INSTALL_PATH
  return TASKHIVE_PROBE_INSTALL_PATH;
#else
  return "taskhive-probe";
#endif
}

void probe_plugins(const std::vector<ProbeJob>& jobs, const std::filesystem::path& executable,
                   std::chrono::milliseconds timeout) {
  std::size_t next = 0;
  while (next < jobs.size()) {
    const std::span<const ProbeJob> batch(jobs.data() + next, std::min(max_batch, jobs.size() - next));
    int error = 0;
    auto child = spawn(batch, executable, error);
    if (!child) {
      // No probe, no load: every remaining plugin is refused rather than loaded unprobed.
      for (; next < jobs.size(); ++next)
        jobs[next].record->reason =
            fmt::format("cannot start the plugin probe {}: {}", executable.string(), std::strerror(error));
      return;
    }
    std::string buffer;
    bool timed_out = false;
    auto hello = read_line(child->out.get(), buffer, Clock::now() + startup_limit, timed_out);
    if (!hello || *hello != R"({"taskhive_probe":1})") {
      const int status = reap(child->pid, true);
      const std::string why = timed_out ? "did not start within " + format_limit(startup_limit)
                              : hello   ? "speaks another protocol (expected version 1)"
                                        : death_reason(status);
      for (; next < jobs.size(); ++next)
        jobs[next].record->reason = fmt::format("plugin probe {} failed: {}", executable.string(), why);
      return;
    }
    std::size_t done = 0;
    for (; done < batch.size(); ++done) {
      const ProbeJob& job = batch[done];
      // The limit is per plugin: it restarts as each result arrives.
      auto line = read_line(child->out.get(), buffer, Clock::now() + timeout, timed_out);
      if (line && apply_result(*line, job.fd, *job.record)) continue;
      const int status = reap(child->pid, true);  // SIGKILL is harmless if it is already dead: not yet reaped
      if (timed_out)
        job.record->reason = "probe timed out after " + format_limit(timeout);
      else if (line)
        job.record->reason = "plugin probe sent a malformed result";
      else
        job.record->reason = death_reason(status);
      job.record->status = PluginStatus::refused;
      ++done;
      child.reset();
      break;
    }
    if (child) reap(child->pid, false);  // all answered; it exits by itself
    next += done;
  }
}

}  // namespace taskhive::detail
