#include "parallelism.hpp"

#include <algorithm>
#include <memory>
#include <mutex>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>

namespace taskhive::detail {
namespace {

std::mutex reservations_mutex;
std::size_t reserved_workers = 0;                  // guarded by reservations_mutex
std::unique_ptr<tbb::global_control> our_control;  // guarded by reservations_mutex

void resize_control() {
  // Never below oneTBB's default (all cores): the application's own parallel algorithms keep their threads.
  const std::size_t wanted = std::max<std::size_t>(reserved_workers + 1, tbb::info::default_concurrency());
  auto replacement = reserved_workers == 0 ? nullptr
                                           : std::make_unique<tbb::global_control>(
                                                 tbb::global_control::max_allowed_parallelism, wanted);
  // The new control exists before the old one goes, so the limit never dips below what is still reserved.
  our_control = std::move(replacement);
}

}  // namespace

WorkerReservation::WorkerReservation(std::size_t workers) : workers_(workers) {
  std::lock_guard lock(reservations_mutex);
  reserved_workers += workers_;
  resize_control();
}

WorkerReservation::~WorkerReservation() {
  std::lock_guard lock(reservations_mutex);
  reserved_workers -= workers_;
  resize_control();
}

std::size_t WorkerReservation::allowed_threads() {
  return tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
}

}  // namespace taskhive::detail
