#pragma once
// Test seams of the plugin probe: points where a test can step in to force a rare interleaving. Each is a
// function pointer, null outside tests; the probe reads it only when a child ends, not per plugin.

#include <atomic>

#include <sys/types.h>

namespace taskhive::detail::seams {

/// Called with the child's pid between the wait that reads how a probe child ended (without reaping it) and
/// the wait that reaps it: the moment a host that reaps every child itself can take it first.
extern std::atomic<void (*)(pid_t)> probe_between_waits;

}  // namespace taskhive::detail::seams
