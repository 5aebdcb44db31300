// taskhive-demo: a small, realistic workload on the scheduler, and a summary of what happened.
//
// Each "job" generates a buffer of 16-64 KiB and computes its FNV-1a checksum (real CPU work), polling for
// cancellation between 64 KiB chunks as a long task should. The mix is meant to exercise every path:
//   - three priority classes (interactive 10, normal 0, batch -5);
//   - about 5% of jobs fail transiently once or twice and are retried with jittered exponential backoff;
//   - about 0.5% fail permanently and end failed once their retries run out;
//   - every 10th job belongs to the task group "nightly-export", which is cancelled halfway through the run;
//   - a few "lookup" jobs have a 1 ms timeout but need several milliseconds of work, so they end timed_out.
// Which job does what is decided by a hash of its number, so runs differ only in timing.
//
// Run: scripts/demo [--workers N] [--tasks N]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <taskhive/scheduler.hpp>
#include <taskhive/task_group.hpp>

namespace {

using namespace std::chrono_literals;
using taskhive::TaskState;
using SteadyClock = std::chrono::steady_clock;

// --- the work
// ---------------------------------------------------------------------------------------------------

// A well-mixed 64-bit hash of a job number (splitmix64's finaliser): decides each job's size and fate.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr std::uint64_t kFnvOffset = 14695981039346656037ull;
constexpr std::uint64_t kFnvPrime = 1099511628211ull;
constexpr std::size_t kChunk = 64 * 1024;

// The job's input: `size` pseudo-random bytes (xorshift64) seeded by the job number. `between_chunks` runs
// before each 64 KiB chunk: generating the data is part of the work, so it polls for cancellation too.
template <typename Poll>
std::vector<std::uint8_t> make_input(std::uint64_t job, std::size_t size, Poll&& between_chunks) {
  std::vector<std::uint8_t> data(size);
  std::uint64_t state = mix(job) | 1;
  for (std::size_t i = 0; i < size; ++i) {
    if (i % kChunk == 0) between_chunks();
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    data[i] = static_cast<std::uint8_t>(state);
  }
  return data;
}

// FNV-1a over the input, polling before each 64 KiB chunk in the same way.
template <typename Poll>
std::uint64_t fnv1a(const std::vector<std::uint8_t>& data, Poll&& between_chunks) {
  std::uint64_t hash = kFnvOffset;
  for (std::size_t begin = 0; begin < data.size(); begin += kChunk) {
    between_chunks();
    const auto end = std::min(data.size(), begin + kChunk);
    for (auto i = begin; i < end; ++i) {
      hash ^= data[i];
      hash *= kFnvPrime;
    }
  }
  return hash;
}

// --- the workload
// -----------------------------------------------------------------------------------------------

enum class Kind { normal, transient, permanent, grouped, lookup };

struct JobSpec {
  std::uint64_t id = 0;
  Kind kind = Kind::normal;
  int priority = 0;
  std::size_t size = 0;
  int transient_failures = 0;  // for Kind::transient: attempts that fail before one succeeds
};

const char* class_name(int priority) {
  return priority > 0 ? "interactive" : priority == 0 ? "normal" : "batch";
}

JobSpec plan_job(std::uint64_t id, std::uint64_t tasks) {
  const auto h = mix(id);
  JobSpec spec{.id = id};
  const auto class_roll = (h >> 10) % 10;  // 1 in 10 interactive, 6 normal, 3 batch
  spec.priority = class_roll == 0 ? 10 : class_roll <= 6 ? 0 : -5;
  spec.size = 16 * 1024 + static_cast<std::size_t>((h >> 20) % (48 * 1024));
  const auto lookups_every = std::max<std::uint64_t>(tasks / 10, 1);  // ten lookups per run
  const auto fate = h % 1000;
  if (id % lookups_every == lookups_every / 2) {
    spec.kind = Kind::lookup;
    spec.priority = 10;
    spec.size = 4 * 1024 * 1024;  // several ms of work, against a 1 ms timeout
  } else if (id % 10 == 3) {
    spec.kind = Kind::grouped;
  } else if (fate < 50) {
    spec.kind = Kind::transient;
    spec.transient_failures = 1 + static_cast<int>((h >> 40) % 2);
  } else if (fate < 55) {
    spec.kind = Kind::permanent;
  }
  return spec;
}

// --- reporting
// --------------------------------------------------------------------------------------------------

std::string human(std::chrono::nanoseconds d) {
  const auto ns = static_cast<double>(d.count());
  if (ns < 1e3) return fmt::format("{:.0f} ns", ns);
  if (ns < 1e6) return fmt::format("{:.1f} µs", ns / 1e3);
  if (ns < 1e9) return fmt::format("{:.2f} ms", ns / 1e6);
  return fmt::format("{:.2f} s", ns / 1e9);
}

double ms_since(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
}

double percent(std::uint64_t part, std::uint64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

std::chrono::nanoseconds nth_percentile(std::vector<std::chrono::nanoseconds>& values, double q) {
  if (values.empty()) return {};
  const auto rank = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(rank), values.end());
  return values[rank];
}

}  // namespace

int main(int argc, char** argv) {
  unsigned workers = 0;
  std::uint64_t tasks = 2000;
  CLI::App cli{"taskhive-demo: runs a mixed workload on a taskhive::Scheduler and prints what happened"};
  cli.add_option("--workers", workers, "worker threads (0 = one per CPU)")->check(CLI::Range(0u, 256u));
  cli.add_option("--tasks", tasks, "jobs to run")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000}));
  CLI11_PARSE(cli, argc, argv);

  taskhive::Scheduler scheduler({.workers = workers, .name = "demo"});
  const auto& options = scheduler.options();

  // Plan the jobs up front, so the summary can say what was intended.
  std::vector<JobSpec> specs;
  std::map<Kind, std::uint64_t> planned;
  for (std::uint64_t id = 0; id < tasks; ++id) {
    specs.push_back(plan_job(id, tasks));
    ++planned[specs.back().kind];
  }
  // "Halfway" is when half of the jobs that are sure to run (not grouped, not lookups) have run once.
  const auto sure_to_run = planned[Kind::normal] + planned[Kind::transient] + planned[Kind::permanent];
  const auto halfway = sure_to_run / 2;

  fmt::print("taskhive demo\n=============\n");
  fmt::print("{} jobs on a scheduler with {} worker thread(s) (this machine has {} CPUs).\n", tasks,
             scheduler.workers(), std::thread::hardware_concurrency());
  fmt::print("Each job computes an FNV-1a checksum of 16-64 KiB of generated data. The mix:\n");
  fmt::print(
      "  - priority classes: interactive (10), normal (0), batch (-5); higher runs first, and\n"
      "    waiting earns priority ({:g} ms of waiting = 1 level) so batch work is never starved\n",
      std::chrono::duration<double, std::milli>(options.aging_step).count());
  fmt::print(
      "  - {} jobs fail transiently (1 or 2 times), retried up to 3 times after a random backoff of at most "
      "5, 10, then 20 ms\n",
      planned[Kind::transient]);
  fmt::print("  - {} jobs fail permanently (\"corrupt input\"); they end failed after 4 attempts\n",
             planned[Kind::permanent]);
  fmt::print("  - {} jobs form the task group \"nightly-export\", cancelled halfway through the run\n",
             planned[Kind::grouped]);
  fmt::print("  - {} \"lookup\" jobs hash 4 MiB with a 1 ms timeout, so they end timed_out\n\n",
             planned[Kind::lookup]);

  // Shared state of the run. Each job writes only its own slot of `results`.
  std::vector<std::uint64_t> results(tasks, 0);
  std::atomic<std::uint64_t> bytes_hashed{0};
  std::atomic<std::uint64_t> first_runs_done{0};
  std::mutex halfway_mutex;
  std::condition_variable halfway_cv;
  taskhive::TaskGroup nightly_export;

  const taskhive::RetryPolicy retry{.max_retries = 3, .initial_delay = 5ms, .multiplier = 2.0};
  std::vector<taskhive::TaskHandle> handles;
  handles.reserve(tasks);

  const auto start = SteadyClock::now();
  for (const auto& spec : specs) {
    auto job = [&, spec](taskhive::TaskContext& ctx) {
      // Count this job's first run towards "halfway", however it ends (it may throw).
      struct CountFirstRun {
        bool counts;
        std::atomic<std::uint64_t>& done;
        std::uint64_t target;
        std::mutex& mutex;
        std::condition_variable& cv;
        ~CountFirstRun() {
          if (counts && done.fetch_add(1) + 1 == target) {
            std::lock_guard lock(mutex);
            cv.notify_all();
          }
        }
      } count_first_run{ctx.attempt() == 1 && spec.kind != Kind::grouped && spec.kind != Kind::lookup,
                        first_runs_done, halfway, halfway_mutex, halfway_cv};

      auto poll = [&] { ctx.throw_if_cancelled(); };
      const auto input = make_input(spec.id, spec.size, poll);
      const auto hash = fnv1a(input, poll);
      bytes_hashed.fetch_add(input.size(), std::memory_order_relaxed);
      if (spec.kind == Kind::transient && ctx.attempt() <= spec.transient_failures) {
        throw std::runtime_error(
            fmt::format("upload failed: connection reset by peer (attempt {})", ctx.attempt()));
      }
      if (spec.kind == Kind::permanent) {
        throw std::runtime_error(
            fmt::format("corrupt input: checksum {:016x} does not match the manifest", hash));
      }
      results[spec.id] = hash;
    };

    taskhive::TaskOptions task_options{
        .name = fmt::format("job-{}", spec.id), .priority = spec.priority, .retry = retry};
    if (spec.kind == Kind::grouped) task_options.group = nightly_export;
    if (spec.kind == Kind::lookup) {
      task_options.name = fmt::format("lookup-{}", spec.id);
      task_options.timeout = 1ms;
    }
    handles.push_back(scheduler.submit(std::move(job), std::move(task_options)));
  }
  const double submit_ms = ms_since(start);
  fmt::print("[{:8.1f} ms] all {} jobs submitted\n", submit_ms, tasks);

  // Halfway: cancel the group. Its queued members end cancelled; running ones stop at their next poll.
  {
    std::unique_lock lock(halfway_mutex);
    halfway_cv.wait(lock, [&] { return first_runs_done.load() >= halfway; });
  }
  const auto export_active = nightly_export.active();
  nightly_export.cancel();
  fmt::print(
      "[{:8.1f} ms] halfway ({} of the {} ordinary jobs have run): cancelled group \"nightly-export\" "
      "({} of its {} jobs not yet finished)\n",
      ms_since(start), first_runs_done.load(), sure_to_run, export_active, planned[Kind::grouped]);

  scheduler.wait_idle();
  const auto elapsed = SteadyClock::now() - start;
  fmt::print("[{:8.1f} ms] every job reached a final state\n\n", ms_since(start));
  scheduler.shutdown();
  const auto m = scheduler.metrics();

  // What the handles say, to cross-check the metrics and to show an example error for each outcome.
  std::map<TaskState, std::uint64_t> by_state;
  std::map<TaskState, std::string> example_error;
  std::map<int, std::vector<std::chrono::nanoseconds>> latency_by_priority;  // submit -> succeeded
  std::uint64_t jobs_retried = 0;
  bool all_final = true;
  for (std::size_t i = 0; i < handles.size(); ++i) {
    const auto& h = handles[i];
    const auto state = h.state();
    all_final = all_final && taskhive::is_final(state);
    ++by_state[state];
    if (h.attempts() > 1) ++jobs_retried;
    if (state != TaskState::succeeded && !example_error.contains(state)) {
      example_error[state] = fmt::format("{}: {}", h.name(), h.error());
    }
    if (state == TaskState::succeeded && specs[i].kind != Kind::lookup) {
      latency_by_priority[specs[i].priority].push_back(*h.finished_at() - h.created_at());
    }
  }

  const auto seconds = std::chrono::duration<double>(elapsed).count();
  fmt::print("Final states                 jobs   share  example error()\n");
  for (auto state : {TaskState::succeeded, TaskState::failed, TaskState::cancelled, TaskState::timed_out}) {
    const auto count = state == TaskState::succeeded   ? m.succeeded
                       : state == TaskState::failed    ? m.failed
                       : state == TaskState::cancelled ? m.cancelled
                                                       : m.timed_out;
    fmt::print("  {:<24} {:>6} {:>6.1f}%  {}\n", taskhive::to_string(state), count,
               percent(count, m.submitted), example_error.contains(state) ? example_error[state] : "");
  }
  fmt::print("  {:<24} {:>6}\n", "submitted (accepted)", m.submitted);
  fmt::print("  {:<24} {:>6}\n\n", "rejected (never accepted)", m.rejected);

  fmt::print(
      "Retries: {} scheduled, for {} jobs (a job that fails waits out its backoff in the timer\n"
      "thread, not on a worker, then is queued again)\n\n",
      m.retried, jobs_retried);

  fmt::print("Latency                        count        p50        p90        p99        max\n");
  auto latency_row = [](const char* what, const taskhive::HistogramSnapshot& s) {
    fmt::print("  {:<24} {:>9} {:>10} {:>10} {:>10} {:>10}\n", what, s.count, human(s.p50), human(s.p90),
               human(s.p99), human(s.max));
  };
  latency_row("queue wait", m.queue_wait);
  latency_row("run time (per attempt)", m.run_time);
  fmt::print(
      "  (queue wait: from being queued, or queued again after a backoff, until a worker starts it)\n\n");

  fmt::print("Submit-to-done time of succeeded jobs, by priority class:\n");
  for (auto it = latency_by_priority.rbegin(); it != latency_by_priority.rend(); ++it) {
    auto& values = it->second;
    const auto p50 = nth_percentile(values, 0.50);
    const auto p90 = nth_percentile(values, 0.90);
    fmt::print("  {:<12} (priority {:>3}) {:>6} jobs   p50 {:>10}   p90 {:>10}\n", class_name(it->first),
               it->first, values.size(), human(p50), human(p90));
  }
  fmt::print("\n");

  // Spot-check some results against a recomputation on this thread.
  std::uint64_t checked = 0, mismatched = 0;
  for (std::size_t i = 0; i < handles.size() && checked < 20;
       i += std::max<std::size_t>(handles.size() / 40, 1)) {
    if (handles[i].state() != TaskState::succeeded || specs[i].kind == Kind::lookup) continue;
    ++checked;
    if (results[i] != fnv1a(make_input(specs[i].id, specs[i].size, [] {}), [] {})) ++mismatched;
  }

  fmt::print(
      "Throughput: {} jobs in {:.1f} ms = {:.0f} jobs/s on {} worker(s); {:.1f} MiB hashed ({:.0f} MiB/s)\n",
      tasks, seconds * 1e3, static_cast<double>(tasks) / seconds, scheduler.workers(),
      static_cast<double>(bytes_hashed.load()) / (1024.0 * 1024.0),
      static_cast<double>(bytes_hashed.load()) / (1024.0 * 1024.0) / seconds);
  fmt::print("Results: spot-checked {} checksums against a recomputation: {}\n", checked,
             mismatched == 0 ? "all match" : fmt::format("{} MISMATCHED", mismatched));

  const bool accounted = m.submitted == m.succeeded + m.failed + m.cancelled + m.timed_out;
  const bool handles_agree = by_state[TaskState::succeeded] == m.succeeded &&
                             by_state[TaskState::failed] == m.failed &&
                             by_state[TaskState::cancelled] == m.cancelled &&
                             by_state[TaskState::timed_out] == m.timed_out && m.submitted == tasks;
  fmt::print(
      "Accounting check: submitted {} == succeeded {} + failed {} + cancelled {} + timed_out {} = {}: {}\n",
      m.submitted, m.succeeded, m.failed, m.cancelled, m.timed_out, m.finished(),
      accounted ? "OK" : "MISMATCH");
  fmt::print("                  every handle final, and their states agree with the metrics: {}\n",
             all_final && handles_agree && m.in_flight == 0 ? "OK" : "MISMATCH");

  const bool ok = accounted && all_final && handles_agree && m.in_flight == 0 && mismatched == 0;
  return ok ? 0 : 1;
}
