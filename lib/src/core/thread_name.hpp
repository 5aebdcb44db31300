#pragma once
// Names the calling thread so it shows in top -H, gdb and perf.

#include <string_view>

namespace taskhive::detail {

/// Sets the calling thread's name, truncated to the 15 characters Linux allows.
void set_current_thread_name(std::string_view name) noexcept;

}  // namespace taskhive::detail
