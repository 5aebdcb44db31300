#include "probe.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>   // socketpair
#include <sys/syscall.h>  // SYS_pidfd_open
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "descriptor_passing.hpp"
#include "file_checks.hpp"
#include "kind_json.hpp"
#include "probe_seams.hpp"

extern char** environ;  // NOLINT: POSIX declares it nowhere

namespace taskhive::detail {

std::atomic<void (*)(pid_t)> seams::probe_between_waits{nullptr};

namespace {

using Clock = std::chrono::steady_clock;

// How long a child may take to start and say hello (exec, dynamic linking; slow under sanitizers). Not the
// per-plugin limit: that starts once the child is up, so a plugin is never blamed for the probe's start-up.
constexpr std::chrono::seconds startup_limit{30};

// At most this many plugins per child: each stays mapped there and holds a descriptor (the child never closes
// one: glibc would take a reused /proc/self/fd/N for the library already loaded under that name).
constexpr std::size_t max_per_child = 256;

std::string format_limit(std::chrono::milliseconds limit) {
  if (limit.count() % 1000 == 0) return fmt::format("{} s", limit.count() / 1000);
  return fmt::format("{} ms", limit.count());
}

// Fills `record` from one result line of the child; false if the line is not a well-formed result.
bool apply_result(const std::string& line, PluginRecord& record) {
  const auto result = nlohmann::json::parse(line, nullptr, false);
  if (result.is_discarded() || !result.is_object()) return false;
  try {
    if (result.at("ok").get<bool>()) {
      record.name = result.at("name").get<std::string>();
      record.version = result.at("version").get<std::string>();
      record.description = result.at("description").get<std::string>();
      record.kinds = kinds_from_json(result.at("kinds"));
      record.status = PluginStatus::available;
      record.reason.clear();
    } else {
      record.status = PluginStatus::refused;
      record.name = result.value("name", "");
      // The child dlopened /proc/self/fd/N, N being its number for the descriptor we passed; people want
      // the file's path.
      record.reason = naming_file(result.at("reason").get<std::string>(),
                                  fmt::format("/proc/self/fd/{}", result.at("fd").get<int>()), record.path);
    }
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return true;
}

// Reads one line from the child within `deadline`. Returns the line, or nothing on end of file or the
// child's end (`exited`, a pidfd, -1 if none: a process the plugin forked keeps the socket open, so its end
// of file may never come) or on timeout (`timed_out` set).
std::optional<std::string> read_line(int fd, int exited, std::string& buffer, Clock::time_point deadline,
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
    std::array<pollfd, 2> p{pollfd{fd, POLLIN, 0}, pollfd{exited, POLLIN, 0}};
    const int ready =
        poll(p.data(), exited >= 0 ? 2 : 1, static_cast<int>(std::min<std::int64_t>(left.count(), 60'000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;  // loop re-checks the deadline
    // The child has ended and left nothing more to read (what it wrote before it ended would be readable).
    if (p[0].revents == 0 && p[1].revents != 0) return std::nullopt;
    char chunk[4096];
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

// Waits for the child, killing it first if `kill_it`, and kills whatever is left in its process group (what
// a plugin forked there). Returns the wait status, or nothing if the child was reaped elsewhere: a host that
// ignores SIGCHLD (or reaps every child itself) leaves no status to collect.
std::optional<int> reap(pid_t pid, bool kill_it) {
  if (kill_it) ::kill(-pid, SIGKILL);
  // Waited for without being reaped: until it is, its pid (its group's id) cannot be reused, so the group
  // kill below cannot reach a stranger's group.
  siginfo_t info{};
  int waited = 0;
  while ((waited = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT)) < 0 && errno == EINTR) {
  }
  if (waited == 0) {
    ::kill(-pid, SIGKILL);  // not if it was reaped elsewhere (SIGCHLD ignored by the host)
    if (auto* seam = seams::probe_between_waits.load(std::memory_order_relaxed)) seam(pid);
  }
  int status = 0;
  pid_t reaped = -1;
  while ((reaped = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (reaped == pid) return status;
  // Reaped elsewhere between the two waits (a host reaping every child): waitid had read how it ended.
  if (waited == 0 && info.si_pid == pid) {
    if (info.si_code == CLD_EXITED) return W_EXITCODE(info.si_status, 0);
    if (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) return W_EXITCODE(0, info.si_status);
  }
  return std::nullopt;
}

std::string death_reason(std::optional<int> wait_status) {
  if (!wait_status) {
    return "died during probe (how is not known: no exit status was left to read, as when the host ignores "
           "SIGCHLD or reaps child processes itself)";
  }
  const int status = *wait_status;
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

ProbeSession::ProbeSession(std::filesystem::path executable, std::chrono::milliseconds timeout)
    : executable_(std::move(executable)), timeout_(timeout) {}

ProbeSession::~ProbeSession() {
  stop(false);
}

bool ProbeSession::start(std::string& why) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    why = fmt::format("cannot start the plugin probe {}: {}", executable_.string(), std::strerror(errno));
    return false;
  }
  FileDescriptor ours(fds[0]), theirs(fds[1]);
  std::vector<std::string> args{executable_.string(), "--protocol", "2"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), STDIN_FILENO);  // the conversation
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  // The child's stderr goes nowhere: a crashing plugin (or a sanitizer's report about it) must not clutter
  // the host's output; the reason the host records says what happened.
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  // A process group of its own: whatever a plugin forks during its probe is killed with the child.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, executable_.c_str(), &actions, &attributes, argv.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    why = fmt::format("cannot start the plugin probe {}: {}", executable_.string(), std::strerror(error));
    return false;
  }
  pid_ = pid;
  exit_ = FileDescriptor(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  socket_ = std::move(ours);
  buffer_.clear();
  served_ = 0;
  bool timed_out = false;
  auto hello = read_line(socket_.get(), exit_.get(), buffer_, Clock::now() + startup_limit, timed_out);
  if (hello && *hello == R"({"taskhive_probe":2})") return true;
  const bool answered = hello.has_value();
  const auto status = reap(pid_, true);
  pid_ = -1;
  exit_ = FileDescriptor();
  socket_ = FileDescriptor();
  why = fmt::format("plugin probe {} failed: {}", executable_.string(),
                    timed_out  ? "did not start within " + format_limit(startup_limit)
                    : answered ? std::string("speaks another protocol (expected version 2)")
                               : death_reason(status));
  return false;
}

void ProbeSession::stop(bool kill_it) {
  if (pid_ < 0) return;
  socket_ = FileDescriptor();  // end of file: an idle child exits by itself
  reap(pid_, kill_it);
  pid_ = -1;
  exit_ = FileDescriptor();
}

ProbeSession::Outcome ProbeSession::attempt(int fd, PluginRecord& record, std::optional<int>& wait_status) {
  if (pid_ >= 0 && served_ >= max_per_child) stop(false);
  if (pid_ < 0) {
    std::string why;
    if (!start(why)) {
      record.status = PluginStatus::refused;
      record.reason = std::move(why);
      return Outcome::unusable;
    }
  }
  ++served_;
  bool timed_out = false;
  std::optional<std::string> line;
  if (send_descriptor(socket_.get(), fd))
    line = read_line(socket_.get(), exit_.get(), buffer_, Clock::now() + timeout_,
                     timed_out);  // the per-plugin limit
  if (line && apply_result(*line, record)) return Outcome::answered;
  wait_status = reap(pid_, true);  // SIGKILL is harmless if it is already dead: not yet reaped
  pid_ = -1;
  exit_ = FileDescriptor();
  socket_ = FileDescriptor();
  if (timed_out) return Outcome::timed_out;
  if (line) {
    record.status = PluginStatus::refused;
    record.reason = "plugin probe sent a malformed result";
    return Outcome::unusable;
  }
  return Outcome::died;
}

void ProbeSession::probe(int fd, PluginRecord& record) {
  std::optional<int> status;
  Outcome outcome = attempt(fd, record, status);
  // A death right after other plugins were probed in this child may be theirs (a thread they started): the
  // plugin is blamed only if it kills a fresh child too.
  if (outcome == Outcome::died && served_ > 1) outcome = attempt(fd, record, status);
  switch (outcome) {
    case Outcome::answered:
    case Outcome::unusable:
      return;
    case Outcome::timed_out:
      record.status = PluginStatus::refused;
      record.reason = "probe timed out after " + format_limit(timeout_);
      return;
    case Outcome::died:
      record.status = PluginStatus::refused;
      record.reason = death_reason(status);
      return;
  }
}

ProbePool::ProbePool(std::filesystem::path executable, std::chrono::milliseconds timeout, std::size_t size)
    : executable_(std::move(executable)), timeout_(timeout) {
  for (std::size_t i = 0; i < size; ++i)
    idle_.push_back(std::make_unique<ProbeSession>(executable_, timeout_));
}

void ProbePool::probe(int fd, PluginRecord& record) {
  std::unique_ptr<ProbeSession> session;
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      session = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!session) session = std::make_unique<ProbeSession>(executable_, timeout_);  // more callers than size
  session->probe(fd, record);
  std::lock_guard lock(mutex_);
  idle_.push_back(std::move(session));
}

}  // namespace taskhive::detail
