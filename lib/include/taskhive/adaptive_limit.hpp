#pragma once
// Adaptive concurrency limits: a limit on work in flight that adjusts itself from observed latency, as in
// Netflix's concurrency-limits, so a service is kept near the concurrency where its latency starts to climb
// without anyone having to know that number.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "taskhive/admission.hpp"

namespace taskhive {

/// One finished request, as a limit algorithm sees it. Time comes only from here: the algorithms never read a
/// clock, so the same samples always give the same limits.
struct LimitSample {
  /// How long the request took, from admission to its end (queueing included).
  std::chrono::nanoseconds rtt{0};
  /// Requests in flight when it ended, itself included: tells a busy limit from an unused one.
  std::size_t in_flight = 0;
  /// The request was dropped (failed or timed out): AIMD backs off; Gradient2 still learns from its RTT.
  bool dropped = false;
};

/// The rule that turns samples into a limit. Implementations need not be thread-safe: AdaptiveLimiter calls
/// them under its lock. Write one to plug a new algorithm into AdaptiveLimiter.
///
/// @code
///   class Fixed final : public taskhive::LimitAlgorithm {
///    public:
///     std::size_t update(const taskhive::LimitSample&) override { return 50; }
///     std::size_t limit() const override { return 50; }
///   };
/// @endcode
class LimitAlgorithm {
 public:
  virtual ~LimitAlgorithm() = default;
  /// Folds one sample in and returns the limit from now on.
  virtual std::size_t update(const LimitSample& sample) = 0;
  virtual std::size_t limit() const = 0;
};

/// Settings of Gradient2Limit. Windows are counted in samples, not time (the algorithm reads no clock): the
/// defaults suit thousands of requests per second or more; at lower rates use a smaller short_window, or the
/// limit reacts slowly (500 samples are half a second at 1,000 requests/s).
struct Gradient2Config {
  double initial_limit = 20;
  double min_limit = 4;
  double max_limit = 1000;
  /// Weight of a new limit against the old one (0..1]; lower is steadier and slower to react.
  double smoothing = 0.2;
  /// Samples averaged into one short-window RTT; the limit changes once per window. A window spanning many
  /// round trips keeps jitter from looking like queueing: in taskhive's simulation, with latencies jittered
  /// by +-50%, windows of 500 samples kept the limit within 30% of the knee, windows of 50 let it reach 3.5x.
  std::size_t short_window = 500;
  /// Windows the long-window RTT (the baseline) averages over, exponentially. Longer is a steadier baseline
  /// but a slower one to accept that a service has become slower for good.
  std::size_t long_window = 600;
  /// Windows averaged plainly before the long average starts (the first baseline); at least 1.
  std::size_t warmup_windows = 10;
  /// Latency growth tolerated before the limit shrinks: the gradient is clamp(tolerance x long / short, 0.5,
  /// 1). 1.0 holds the limit where latency starts to rise; 1.5 (Netflix's later default) lets it rise 50%.
  /// Positive and finite.
  double tolerance = 1.0;
  /// Requests allowed to queue beyond what the gradient admits, as a function of the limit: the room that
  /// lets the limit probe upwards. Constant 4 by default.
  std::function<double(double limit)> queue_allowance = [](double) { return 4.0; };
  /// Add the queue allowance even while queueing is detected (gradient < 1), as Netflix's Gradient2 does.
  /// Off by default: with it on, the baseline follows the latency the limit itself causes and the limit
  /// creeps up without end under sustained load (in taskhive's simulation from about 40 to 136 in two minutes
  /// with a knee at 32; Netflix/concurrency-limits#134 reports the same). With it off the limit grows only
  /// while latency is at its baseline, and holds at the knee.
  bool allowance_while_queueing = false;
};

/// Netflix's Gradient2: compares a short-window RTT with a long-window one (the baseline), shrinks the limit
/// when latency rises above the baseline (queueing) and grows it by a queue allowance when it does not. Once
/// per short window:
///
///   gradient  = clamp(tolerance x long_rtt / short_rtt, 0.5, 1.0)
///   new_limit = gradient x limit + queue_allowance(limit)      (the allowance only at gradient 1, see below)
///   limit     = clamp(limit x (1 - smoothing) + new_limit x smoothing, min_limit, max_limit)
///
/// It does not grow while the limit is unused (the most in flight during the window is under half of it),
/// and when the baseline is more than twice the short RTT (latency is back down after a long overload) it
/// pulls the baseline down by 5% per window rather than wait for the average to forget the overload.
///
/// @code
///   taskhive::Gradient2Limit gradient({.initial_limit = 20, .max_limit = 200});
///   auto limit = gradient.update({.rtt = 1ms, .in_flight = 18});
/// @endcode
///
/// Unlike Netflix's, the allowance is not added while queueing is detected (Gradient2Config::
/// allowance_while_queueing restores that), because that makes the limit drift up under sustained load.
class Gradient2Limit final : public LimitAlgorithm {
 public:
  explicit Gradient2Limit(Gradient2Config config = {});
  std::size_t update(const LimitSample& sample) override;
  std::size_t limit() const override;

  /// The current limit before rounding, and the two RTTs it was computed from (0 before the first window).
  double estimated_limit() const noexcept { return limit_; }
  std::chrono::nanoseconds long_rtt() const noexcept;
  std::chrono::nanoseconds short_rtt() const noexcept;

 private:
  Gradient2Config config_;
  double limit_;
  // The window being filled.
  double window_sum_ns_ = 0;
  std::size_t window_samples_ = 0;
  std::size_t window_max_in_flight_ = 0;
  // Results of the last complete window.
  double short_rtt_ns_ = 0;
  double long_rtt_ns_ = 0;
  std::size_t windows_ = 0;
};

/// Settings of AimdLimit.
struct AimdConfig {
  std::size_t initial_limit = 20;
  std::size_t min_limit = 4;
  std::size_t max_limit = 1000;
  /// The limit is multiplied by this on every drop.
  double backoff_ratio = 0.9;
  /// A success slower than this counts as a drop; none by default.
  std::optional<std::chrono::nanoseconds> timeout{};
};

/// Additive increase, multiplicative decrease: x backoff_ratio on every drop (a failure or time-out), +1 on
/// every success while the limit is in use (in flight >= limit), within [min_limit, max_limit]. Blind to
/// latency unless given a timeout; simple and robust where drops are the signal.
///
/// @code
///   taskhive::AimdLimit aimd({.initial_limit = 10});
///   aimd.update({.in_flight = 10});                  // 11
///   aimd.update({.dropped = true});                  // 9 (11 x 0.9, rounded down)
/// @endcode
class AimdLimit final : public LimitAlgorithm {
 public:
  explicit AimdLimit(AimdConfig config = {});
  std::size_t update(const LimitSample& sample) override;
  std::size_t limit() const override { return limit_; }

 private:
  AimdConfig config_;
  std::size_t limit_;
};

/// Admission control with an adaptive limit: refuses work while as many requests are in flight as the
/// algorithm currently allows, and learns from how admitted work ends. Plug it into a scheduler, or feed it
/// samples from a flow graph and let a BoundedStage follow its limit.
///
/// @code
///   using namespace taskhive;
///   auto limiter = std::make_shared<AdaptiveLimiter>(std::make_unique<Gradient2Limit>());
///   Scheduler scheduler({.workers = 8, .admission = limiter});
///   auto h = scheduler.try_submit(call_backend);   // at the limit: rejected, "overloaded: ..."
///
///   // A flow-graph stage (taskhive/flow.hpp) follows the limit, and reports latencies with record().
///   limiter->on_limit_change([&stage](std::size_t limit) {
///     stage.set_capacity(std::clamp<std::size_t>(limit, 1, stage.max_in_flight()));
///   });
/// @endcode
///
/// The limit counts requests, not their load weight (latency is measured per request); the weight is still
/// reported as AdmissionStats::load. Outcomes: succeeded is a latency sample, failed and timed_out are drops,
/// cancelled and rejected teach nothing. Thread-safe: admission is a compare-and-swap on the in-flight count;
/// the algorithm is updated under a mutex.
class AdaptiveLimiter final : public AdmissionPolicy {
 public:
  using LimitListener = std::function<void(std::size_t limit)>;
  using ListenerId = std::uint64_t;

  explicit AdaptiveLimiter(std::unique_ptr<LimitAlgorithm> algorithm);
  AdaptiveLimiter(const AdaptiveLimiter&) = delete;
  AdaptiveLimiter& operator=(const AdaptiveLimiter&) = delete;

  std::optional<std::string> try_admit(std::uint32_t load) override;
  void release(std::uint32_t load, TaskState outcome, std::chrono::nanoseconds latency) noexcept override;
  AdmissionStats stats() const override;

  /// Feeds a sample to the algorithm without admission bookkeeping: for work admitted elsewhere, such as the
  /// items of a BoundedStage.
  void record(const LimitSample& sample) noexcept;

  std::size_t limit() const noexcept { return limit_.load(std::memory_order_acquire); }
  std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_acquire); }

  /// Calls `listener` with the new limit after every change, serially and with the latest value last, so the
  /// last call always carries the current limit. Listeners run on the thread that reported the sample, under
  /// a lock: they must not subscribe, unsubscribe or report samples, even indirectly (BoundedStage::
  /// set_capacity() may run a flow-graph source's body inline, so keep record() out of source bodies). An
  /// exception from a listener is logged and swallowed.
  ListenerId on_limit_change(LimitListener listener);
  /// After this returns the listener is not running and will not run again.
  void remove_listener(ListenerId id);

 private:
  void notify_listeners() noexcept;

  std::unique_ptr<LimitAlgorithm> algorithm_;
  std::mutex algorithm_mutex_;
  std::atomic<std::size_t> limit_;
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::int64_t> load_{0};
  std::atomic<std::int64_t> peak_load_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> rejected_{0};

  std::mutex listeners_mutex_;
  std::map<ListenerId, LimitListener> listeners_;
  ListenerId next_listener_ = 1;
  std::size_t last_notified_;
};

}  // namespace taskhive
