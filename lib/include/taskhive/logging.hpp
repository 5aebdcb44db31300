#pragma once
// The library's logger. taskhive never writes to stdout; it logs through spdlog on the logger named
// "taskhive".

#include <memory>

#include <spdlog/logger.h>

namespace taskhive {

/// The "taskhive" logger: the one registered with spdlog under that name if the application made one, else a
/// stderr logger at level warn, created on first use.
///
/// @code
///   auto log = spdlog::stdout_color_mt("taskhive");   // before first use: taskhive logs through it
///   log->set_level(spdlog::level::debug);             // see every retry and failure
/// @endcode
std::shared_ptr<spdlog::logger> logger();

/// Replaces the logger used from now on (and registers it with spdlog under its own name).
void set_logger(std::shared_ptr<spdlog::logger> replacement);

}  // namespace taskhive
