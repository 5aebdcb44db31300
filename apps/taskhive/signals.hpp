#pragma once
// Ctrl-C for `taskhive run`: SIGINT and SIGTERM are blocked in every thread (call block_signals() first in
// main, before any thread starts, so the threads inherit the mask) and taken by one thread with sigwait,
// which can then call into the library freely (a signal handler could not). The first signal asks the run to
// stop and drain, the second to cancel.

#include <atomic>
#include <csignal>
#include <functional>
#include <thread>

namespace taskhive::cli {

/// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts afterwards.
void block_signals();

class SignalWatcher {
 public:
  /// `first` runs on the first SIGINT/SIGTERM, `second` on the next ones.
  SignalWatcher(std::function<void()> first, std::function<void()> second);
  ~SignalWatcher();  ///< stops the watching thread
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  /// How many signals arrived.
  int received() const noexcept { return received_.load(); }

 private:
  std::function<void()> first_, second_;
  std::atomic<int> received_{0};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace taskhive::cli
