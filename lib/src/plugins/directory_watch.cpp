#include "directory_watch.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <system_error>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "taskhive/logging.hpp"

namespace taskhive::detail {

namespace {

constexpr std::uint32_t kWatchedEvents = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM |
                                         IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
// In a plugin directory's parent: its name arriving, leaving or being renamed over.
constexpr std::uint32_t kParentEvents = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM;

// `path` made absolute and without a trailing separator, so that it has a parent and a name.
std::filesystem::path normalized(const std::filesystem::path& path) {
  std::error_code ec;
  auto out = std::filesystem::absolute(path, ec).lexically_normal();
  if (out.has_parent_path() && out.filename().empty()) out = out.parent_path();
  return out;
}
constexpr std::chrono::seconds kMaxSettle{1};

int poll_for(pollfd* fds, nfds_t count, std::chrono::milliseconds timeout) {
  const int ms =
      timeout.count() < 0 ? -1 : static_cast<int>(std::min<std::int64_t>(timeout.count(), 1 << 30));
  int ready = 0;
  do ready = poll(fds, count, ms);
  while (ready < 0 && errno == EINTR);
  return ready;
}

}  // namespace

DirectoryWatch::DirectoryWatch(std::vector<std::filesystem::path> dirs, bool use_inotify,
                               std::chrono::milliseconds interval, std::chrono::milliseconds settle,
                               std::function<void()> on_change)
    : stop_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      interval_(interval),
      settle_(settle),
      on_change_(std::move(on_change)) {
  if (!stop_) throw std::system_error(errno, std::generic_category(), "eventfd");
  for (const auto& dir : dirs) dirs_.push_back(normalized(dir));
  if (use_inotify) {
    inotify_ = FileDescriptor(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!inotify_) throw std::system_error(errno, std::generic_category(), "inotify_init1");
    for (const auto& dir : arm())
      logger()->warn("cannot watch plugin directory {}; it is rescanned only on demand{}", dir.string(),
                     interval.count() > 0 ? " and on the interval" : "");
  }
  thread_ = std::thread([this] { run(); });
}

std::vector<std::filesystem::path> DirectoryWatch::arm() {
  std::vector<std::filesystem::path> unwatched;
  std::map<int, Watched> now;
  const auto add = [&](const std::filesystem::path& path, std::uint32_t mask) {
    // IN_MASK_ADD: one directory may be both a plugin directory and another one's parent.
    const int wd = inotify_add_watch(inotify_.get(), path.c_str(), mask | IN_MASK_ADD);
    return wd;
  };
  for (const auto& dir : dirs_) {
    // The parent, for the configured name and for the name it resolves to (a symlinked directory's target
    // may be replaced in its own parent).
    if (const int wd = add(dir.parent_path(), kParentEvents); wd >= 0)
      now[wd].names.push_back(dir.filename().string());
    std::error_code ec;
    const auto target = std::filesystem::canonical(dir, ec);
    if (ec) {  // gone for now: its parent's watch sees it come back
      unwatched.push_back(dir);
      continue;
    }
    if (const int wd = add(target, kWatchedEvents); wd >= 0)
      now[wd].directory = true;
    else
      unwatched.push_back(dir);
    if (target != dir) {
      if (const int wd = add(target.parent_path(), kParentEvents); wd >= 0)
        now[wd].names.push_back(target.filename().string());
    }
  }
  // Watches on what the names no longer lead to (an old release's directory) go.
  for (const auto& [wd, what] : watched_)
    if (!now.contains(wd)) inotify_rm_watch(inotify_.get(), wd);  // fails harmlessly if already gone
  watched_ = std::move(now);
  return unwatched;
}

DirectoryWatch::~DirectoryWatch() {
  const std::uint64_t one = 1;
  (void)!write(stop_.get(), &one, sizeof one);
  thread_.join();
}

bool DirectoryWatch::drain_events() {
  alignas(inotify_event) std::array<char, 16 * 1024> buffer{};
  // Which file changed in a plugin directory does not matter: the rescan looks at all of them (stat only for
  // unchanged ones). In a parent, only the plugin directories' names do.
  bool relevant = false;
  for (;;) {
    const ssize_t n = read(inotify_.get(), buffer.data(), buffer.size());
    if (n <= 0) return relevant;
    for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      if (event->mask & IN_Q_OVERFLOW) {
        relevant = true;
        continue;
      }
      const auto it = watched_.find(event->wd);
      if (it == watched_.end()) continue;
      if (it->second.directory) {
        relevant = true;
      } else if (event->len > 0) {
        const std::string name(event->name);  // NUL-padded to len
        if (std::find(it->second.names.begin(), it->second.names.end(), name) != it->second.names.end())
          relevant = true;
      }
    }
  }
}

void DirectoryWatch::run() {
  using Clock = std::chrono::steady_clock;
  const bool timed = interval_.count() > 0;
  auto next_tick = Clock::now() + interval_;
  for (;;) {
    std::array<pollfd, 2> fds{pollfd{stop_.get(), POLLIN, 0}, pollfd{inotify_.get(), POLLIN, 0}};
    const nfds_t count = inotify_ ? 2 : 1;
    const auto wait = timed ? std::chrono::ceil<std::chrono::milliseconds>(next_tick - Clock::now())
                            : std::chrono::milliseconds(-1);
    if (poll_for(fds.data(), count, timed ? std::max(wait, std::chrono::milliseconds(0)) : wait) < 0) {
      logger()->error("plugin directory watch stopped: poll failed");
      return;
    }
    if (fds[0].revents) return;
    if (count == 2 && fds[1].revents) {
      // Settle: wait for a quiet `settle_`, so a plugin being copied in is scanned once it is whole.
      const auto give_up = Clock::now() + kMaxSettle;
      bool relevant = drain_events();
      while (Clock::now() < give_up) {
        fds[1].revents = 0;
        fds[0].revents = 0;
        if (poll_for(fds.data(), 2, settle_) <= 0) break;
        if (fds[0].revents) return;
        relevant = drain_events() || relevant;
      }
      if (!relevant && (!timed || Clock::now() < next_tick)) continue;  // a neighbour in a parent changed
    } else if (!timed || Clock::now() < next_tick) {
      continue;
    }
    next_tick = Clock::now() + interval_;
    // Before the callback: what arrives after this is seen by the new watches, what arrived before by the
    // rescan the callback runs.
    if (inotify_) (void)arm();  // what the configured names lead to may have changed
    try {
      on_change_();
    } catch (const std::exception& e) {  // this thread is the host's: an exception here would terminate it
      logger()->error("plugin directory rescan failed: {}; the next change or interval tries again",
                      e.what());
    } catch (...) {
      logger()->error("plugin directory rescan failed; the next change or interval tries again");
    }
  }
}

}  // namespace taskhive::detail
