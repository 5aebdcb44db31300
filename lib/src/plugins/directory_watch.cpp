#include "directory_watch.hpp"

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

DirectoryWatch::DirectoryWatch(const std::vector<std::filesystem::path>& dirs, bool use_inotify,
                               std::chrono::milliseconds interval, std::chrono::milliseconds settle,
                               std::function<void()> on_change)
    : stop_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      interval_(interval),
      settle_(settle),
      on_change_(std::move(on_change)) {
  if (!stop_) throw std::system_error(errno, std::generic_category(), "eventfd");
  if (use_inotify) {
    inotify_ = FileDescriptor(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!inotify_) throw std::system_error(errno, std::generic_category(), "inotify_init1");
    for (const auto& dir : dirs)
      if (inotify_add_watch(inotify_.get(), dir.c_str(), kWatchedEvents) < 0)
        logger()->warn("cannot watch plugin directory {}: {}; it is rescanned only on demand{}", dir.string(),
                       std::error_code(errno, std::generic_category()).message(),
                       interval.count() > 0 ? " and on the interval" : "");
  }
  thread_ = std::thread([this] { run(); });
}

DirectoryWatch::~DirectoryWatch() {
  const std::uint64_t one = 1;
  (void)!write(stop_.get(), &one, sizeof one);
  thread_.join();
}

void DirectoryWatch::drain_events() {
  alignas(inotify_event) std::array<char, 16 * 1024> buffer{};
  // Which file changed does not matter: the rescan looks at all of them (stat only for unchanged ones).
  while (read(inotify_.get(), buffer.data(), buffer.size()) > 0) {
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
      drain_events();
      while (Clock::now() < give_up) {
        fds[1].revents = 0;
        fds[0].revents = 0;
        if (poll_for(fds.data(), 2, settle_) <= 0) break;
        if (fds[0].revents) return;
        drain_events();
      }
    } else if (!timed || Clock::now() < next_tick) {
      continue;
    }
    next_tick = Clock::now() + interval_;
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
