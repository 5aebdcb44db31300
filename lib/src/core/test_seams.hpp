#pragma once
// Test seams: points inside the scheduler where a test can step in to force a rare interleaving. Each is a
// function pointer, null outside tests; the scheduler reads it only on paths that are not per task.

#include <atomic>

namespace taskhive::detail::seams {

/// Called by a drainer that found the queue empty, just before it gives up its drainer slot: the moment a
/// push can see every slot taken while one of the drainers holding them is on its way out.
extern std::atomic<void (*)()> drainer_leaving;

/// Called by whichever thread brings a scheduler's in-flight count to 0, before it wakes wait_idle(): the
/// moment another thread that saw its task final may try to destroy the scheduler.
extern std::atomic<void (*)()> in_flight_drained;

}  // namespace taskhive::detail::seams
