#pragma once
// WorkerReservation: makes oneTBB create enough worker threads for every live scheduler together.

#include <cstddef>

namespace taskhive::detail {

/// oneTBB creates hardware_concurrency - 1 workers unless a tbb::global_control allows more, and all arenas
/// in a process share them; so N workers for each of several schedulers need one process-wide control sized
/// to the sum. Each scheduler holds a reservation for its lifetime; the library keeps one control, resized as
/// reservations come and go. (oneTBB applies the smallest of all live controls, so an application's own
/// smaller control still wins; the scheduler logs a warning then.)
class WorkerReservation {
 public:
  explicit WorkerReservation(std::size_t workers);
  ~WorkerReservation();
  WorkerReservation(const WorkerReservation&) = delete;
  WorkerReservation& operator=(const WorkerReservation&) = delete;

  /// Threads oneTBB allows now (workers + 1 for the application's thread), as it reports.
  static std::size_t allowed_threads();

 private:
  std::size_t workers_;
};

}  // namespace taskhive::detail
