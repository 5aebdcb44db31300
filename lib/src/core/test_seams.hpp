#pragma once
// Test seams: points inside the scheduler where a test can step in to force a rare interleaving. Each is a
// function pointer, null outside tests; the scheduler reads it only on paths that are not per task.

#include <atomic>

namespace taskhive::detail::seams {

/// Called by a drainer that found the queue empty, just before it gives up its drainer slot: the moment a
/// push can see every slot taken while one of the drainers holding them is on its way out.
extern std::atomic<void (*)()> drainer_leaving;

}  // namespace taskhive::detail::seams
