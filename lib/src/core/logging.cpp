#include "taskhive/logging.hpp"

#include <atomic>
#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace taskhive {
namespace {

std::mutex logger_mutex;
std::shared_ptr<spdlog::logger> current;  // guarded by logger_mutex

}  // namespace

std::shared_ptr<spdlog::logger> logger() {
  std::lock_guard lock(logger_mutex);
  if (!current) {
    current = spdlog::get("taskhive");
    if (!current) {
      current = spdlog::stderr_color_mt("taskhive");
      current->set_level(spdlog::level::warn);
    }
  }
  return current;
}

void set_logger(std::shared_ptr<spdlog::logger> replacement) {
  std::lock_guard lock(logger_mutex);
  if (replacement && !spdlog::get(replacement->name())) spdlog::register_logger(replacement);
  current = std::move(replacement);
}

}  // namespace taskhive
