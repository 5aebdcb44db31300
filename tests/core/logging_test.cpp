#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "taskhive/logging.hpp"
#include "taskhive/scheduler.hpp"

using namespace std::chrono_literals;
using taskhive::Scheduler;
using taskhive::TaskHandle;
using taskhive::TaskState;

namespace {

// Runs work that logs on every path the scheduler has: a retried failure (debug), a final failure (debug) and
// an on_final callback that throws (error).
void run_logging_work() {
  Scheduler scheduler({.workers = 1, .name = "loud"});
  auto flaky =
      scheduler.submit([] { throw std::runtime_error("flaky"); },
                       {.name = "flaky",
                        .retry = {.max_retries = 1, .initial_delay = 1ms, .jitter = false},
                        .on_final = [](const TaskHandle&) { throw std::runtime_error("callback"); }});
  CHECK(flaky.wait() == TaskState::failed);
  scheduler.shutdown();
}

// Puts the library's logger back as it was when the test ends, whatever the test did to it.
class LoggerRestorer {
 public:
  LoggerRestorer() : saved_(taskhive::logger()), level_(saved_->level()) {}
  ~LoggerRestorer() {
    saved_->set_level(level_);
    taskhive::set_logger(saved_);
  }
  LoggerRestorer(const LoggerRestorer&) = delete;
  LoggerRestorer& operator=(const LoggerRestorer&) = delete;

 private:
  std::shared_ptr<spdlog::logger> saved_;
  spdlog::level::level_enum level_;
};

}  // namespace

TEST_CASE("the library logs through the logger named taskhive", "[logging]") {
  LoggerRestorer restore;
  CHECK(taskhive::logger()->name() == "taskhive");
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto mine = std::make_shared<spdlog::logger>("taskhive-test", sink);
  mine->set_level(spdlog::level::debug);
  taskhive::set_logger(mine);
  CHECK(taskhive::logger() == mine);
  run_logging_work();
  mine->flush();
  const auto text = captured.str();
  CHECK(text.find("task 'flaky' failed attempt 1 (flaky); retrying") != std::string::npos);
  CHECK(text.find("task 'flaky' failed after 2 attempt(s): flaky") != std::string::npos);
  CHECK(text.find("task 'flaky': its on_final callback threw: callback") != std::string::npos);
  spdlog::drop("taskhive-test");
}

TEST_CASE("the library never writes to stdout, even at debug level", "[logging]") {
  LoggerRestorer restore;
  taskhive::logger()->set_level(spdlog::level::debug);  // the default logger, on stderr
  std::fflush(stdout);
  std::FILE* capture = std::tmpfile();
  REQUIRE(capture != nullptr);
  const int saved_stdout = ::dup(STDOUT_FILENO);
  REQUIRE(saved_stdout >= 0);
  REQUIRE(::dup2(::fileno(capture), STDOUT_FILENO) >= 0);
  run_logging_work();
  std::fflush(stdout);
  ::dup2(saved_stdout, STDOUT_FILENO);
  ::close(saved_stdout);
  std::fseek(capture, 0, SEEK_END);
  const long written = std::ftell(capture);
  std::fclose(capture);
  CHECK(written == 0);
}
