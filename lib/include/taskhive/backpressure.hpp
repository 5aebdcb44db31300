#pragma once
// Backpressure at the edge: load-based admission control. Work beyond a load limit is refused at once with a
// reason (like an HTTP 503) instead of queueing without bound, so memory and queue wait stay bounded under
// overload. (Lossless flow control inside pipelines is taskhive/flow.hpp.)

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "taskhive/admission.hpp"
#include "taskhive/clock.hpp"

namespace taskhive {

/// What an AdmissionController admits. Only max_load is required:
///
/// @code
///   taskhive::AdmissionConfig config{.max_load = 100};  // cooldown 100 ms, resumes below 50
///   taskhive::AdmissionConfig strict{.max_load = 100, .cooldown = 2s, .low_watermark = 30};
///   taskhive::AdmissionConfig observe{.enabled = false, .max_load = 100};  // admits all, still measures
/// @endcode
struct AdmissionConfig {
  /// When false everything is admitted, but load, peak and counts are still tracked: run with it off first to
  /// size max_load from real traffic.
  bool enabled = true;
  /// The most load admitted at once (the sum of the weights of work holding a permit). Must be > 0.
  std::int64_t max_load = 0;
  /// After a rejection, the least time before new work is admitted again. May be zero, which leaves only the
  /// low watermark as hysteresis.
  std::chrono::nanoseconds cooldown = std::chrono::milliseconds(100);
  /// After a rejection, new work is admitted again only once the load is below this (and the cooldown is
  /// over). Between 1 and max_load; unset means max_load / 2 (at least 1), the ratio Netty uses for its write
  /// buffer watermarks: low enough that admission does not flap at the limit, high enough to keep workers
  /// fed.
  std::optional<std::int64_t> low_watermark{};
};

/// Either the result of admitted work (a value, or a permit) or the reason the work was refused, written for
/// a person ("overloaded: load 90 + 20 > max 100"). Refusal is an expected outcome, so it is a value, not an
/// exception; asking a refusal for its value is a programming error and throws std::logic_error.
///
/// @code
///   auto answer = admission.execute_with_backpressure(20, [] { return render_page(); });
///   if (!answer) return http_503(answer.error());
///   send(answer.value());
/// @endcode
template <typename T>
class [[nodiscard]] AdmissionResult {
 public:
  // Implicit on purpose: `return value;` from a function returning AdmissionResult<T> reads naturally.
  AdmissionResult(T value) : outcome_(std::in_place_index<0>, std::move(value)) {}
  static AdmissionResult refused(std::string reason) {
    return AdmissionResult(std::in_place_index<1>, std::move(reason));
  }

  bool admitted() const noexcept { return outcome_.index() == 0; }
  explicit operator bool() const noexcept { return admitted(); }

  T& value() & { return std::get<0>(checked()); }
  const T& value() const& { return std::get<0>(checked()); }
  T&& value() && { return std::get<0>(std::move(checked())); }

  /// Why the work was refused; "" when it was admitted.
  const std::string& error() const noexcept {
    static const std::string none;
    return admitted() ? none : std::get<1>(outcome_);
  }

 private:
  template <std::size_t I, typename... Args>
  explicit AdmissionResult(std::in_place_index_t<I> index, Args&&... args)
      : outcome_(index, std::forward<Args>(args)...) {}

  std::variant<T, std::string>& checked() {
    if (!admitted()) throw std::logic_error("value() of refused work: " + std::get<1>(outcome_));
    return outcome_;
  }
  const std::variant<T, std::string>& checked() const {
    if (!admitted()) throw std::logic_error("value() of refused work: " + std::get<1>(outcome_));
    return outcome_;
  }

  std::variant<T, std::string> outcome_;
};

/// The answer for work that returns nothing: admitted (and done), or refused with a reason.
template <>
class [[nodiscard]] AdmissionResult<void> {
 public:
  AdmissionResult() = default;
  static AdmissionResult refused(std::string reason) {
    AdmissionResult result;
    result.error_ = std::move(reason);
    return result;
  }

  bool admitted() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return admitted(); }
  const std::string& error() const noexcept {
    static const std::string none;
    return error_ ? *error_ : none;
  }

 private:
  std::optional<std::string> error_;
};

/// Load-based admission control: admits work while the load it holds stays within max_load, and after a
/// rejection refuses new work until a cooldown has passed and the load has fallen below a low watermark.
///
/// @code
///   taskhive::AdmissionConfig config{.max_load = 100};
///   auto admission = std::make_shared<taskhive::AdmissionController>(config);
///
///   // Around any work: a permit holds its load until it is destroyed or released.
///   if (auto permit = admission->try_acquire(20)) {
///     handle_request();                 // the load is released at scope exit, even on a throw
///   } else {
///     reply_503(permit.error());        // "overloaded: load 90 + 20 > max 100"
///   }
///   auto page = admission->execute_with_backpressure(20, [] { return render(); });  // the same, in one call
///
///   // In front of a scheduler: a task's TaskOptions::load is held from submit to its final state.
///   taskhive::Scheduler scheduler({.workers = 4, .admission = admission});
///   auto task = scheduler.try_submit(work, {.load = 20});  // when overloaded: rejected, with that reason
/// @endcode
///
/// Hysteresis. A rejection for load starts a cooldown: from then on new work is refused until BOTH the
/// cooldown has elapsed AND the load is below low_watermark; the first admission after that ends it. Without
/// both halves admission flaps: refusing only by load admits again the moment one task ends, which refills
/// the system to the limit and rejects again; refusing only by time admits a burst into a still-full system.
/// Refusals during the cooldown do not extend it: under sustained overload callers keep retrying, and if
/// every refusal pushed the cooldown further it would never end.
///
/// Work heavier than max_load on its own is refused with its own message and does not start a cooldown: it
/// says nothing about overload, and no amount of waiting would admit it. A weight of 0 is admitted whenever
/// admission is open (it is still counted and still refused during a cooldown).
///
/// Thread-safe and lock-free: admission is a compare-and-swap on the load, so concurrent acquires never take
/// the load past max_load; the clock is read only on a refusal or during a cooldown. A Permit borrows its
/// controller: the controller must outlive every permit it granted (a scheduler holds it by shared_ptr).
///
/// As a taskhive::AdmissionPolicy, try_admit() and release() act on the same state as permits; stats()
/// reports limit = max_load and in_flight = admissions not yet released. `accepted` counts admissions
/// granted, so it includes a task the scheduler then refused for lack of queue room (released at once, as
/// `rejected`).
class AdmissionController final : public AdmissionPolicy {
 public:
  /// Holds `load` of its controller's capacity until destroyed or release()d, exactly once. Move-only; a
  /// default-constructed or moved-from permit holds nothing. Not for concurrent use of one permit.
  class Permit {
   public:
    Permit() noexcept = default;
    Permit(Permit&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), load_(std::exchange(other.load_, 0)) {}
    Permit& operator=(Permit&& other) noexcept {
      if (this != &other) {
        release();
        owner_ = std::exchange(other.owner_, nullptr);
        load_ = std::exchange(other.load_, 0);
      }
      return *this;
    }
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { release(); }

    /// Gives the load back now (idempotent).
    void release() noexcept {
      if (owner_ != nullptr) std::exchange(owner_, nullptr)->release_load(load_);
    }
    bool held() const noexcept { return owner_ != nullptr; }
    /// The weight this permit holds (0 once released).
    std::uint32_t load() const noexcept { return owner_ != nullptr ? load_ : 0; }

   private:
    friend class AdmissionController;
    Permit(AdmissionController* owner, std::uint32_t load) noexcept : owner_(owner), load_(load) {}

    AdmissionController* owner_ = nullptr;
    std::uint32_t load_ = 0;
  };

  /// Throws std::invalid_argument if the config is inconsistent (max_load <= 0, a negative cooldown, a low
  /// watermark outside 1..max_load): a configuration bug, not a runtime condition.
  explicit AdmissionController(AdmissionConfig config, std::shared_ptr<Clock> clock = Clock::steady());
  ~AdmissionController() override;
  AdmissionController(const AdmissionController&) = delete;
  AdmissionController& operator=(const AdmissionController&) = delete;

  /// Admits work of weight `load` and returns the permit that holds it, or the reason it was refused.
  AdmissionResult<Permit> try_acquire(std::uint32_t load);

  /// Whether try_acquire(load) would be refused now. Changes nothing (no count, no cooldown); the answer may
  /// be stale by the time the caller acts on it, so use it for early hints, and try_acquire() to admit.
  bool should_reject(std::uint32_t load) const;

  /// Runs `op` under a permit for `load` and returns what it returns; or, if refused, returns the reason
  /// without running it. If `op` throws, the load is released and the exception propagates.
  template <typename Op>
  auto execute_with_backpressure(std::uint32_t load, Op&& op)
      -> AdmissionResult<std::remove_cvref_t<std::invoke_result_t<Op&>>> {
    using R = std::remove_cvref_t<std::invoke_result_t<Op&>>;
    auto permit = try_acquire(load);
    if (!permit) return AdmissionResult<R>::refused(permit.error());
    if constexpr (std::is_void_v<R>) {
      std::invoke(op);
      return {};
    } else {
      return AdmissionResult<R>(std::invoke(op));
    }
  }

  /// Load held by outstanding permits and admitted tasks.
  std::int64_t load() const noexcept { return load_.load(std::memory_order_relaxed); }
  /// When work was last refused (for any reason), on this controller's clock; nullopt if never.
  std::optional<Clock::time_point> last_rejection() const noexcept;
  /// True from a rejection for load until the first admission after the cooldown and watermark allow it.
  bool cooling_down() const noexcept { return cooling_until_.load(std::memory_order_acquire) != kNever; }
  const AdmissionConfig& config() const noexcept { return config_; }

  // AdmissionPolicy: what a Scheduler calls at submit and at a task's final state.
  std::optional<std::string> try_admit(std::uint32_t load) override;
  void release(std::uint32_t load, TaskState outcome, std::chrono::nanoseconds latency) noexcept override;
  AdmissionStats stats() const override;

 private:
  void release_load(std::uint32_t load) noexcept {
    // Relaxed: the load is a counter that guards nothing else; its own modification order is what keeps it
    // within max_load.
    load_.fetch_sub(load, std::memory_order_relaxed);
    released_.fetch_add(1, std::memory_order_relaxed);
  }
  std::optional<std::string> admit(std::uint32_t load);
  /// When a cooldown starting at `now` ends (ns on clock_).
  std::int64_t cooldown_end(std::int64_t now) const noexcept;
  std::optional<std::string> check_cooldown(std::int64_t load_now, std::int64_t cooling_until,
                                            std::int64_t now) const;
  std::string refuse(std::string reason, std::int64_t now) noexcept;
  void note_peak(std::int64_t load) noexcept;

  // "No time": not cooling down, never rejected. Not 0, which a clock may read (a simulation's epoch).
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

  const AdmissionConfig config_;
  const std::int64_t low_watermark_;
  const std::shared_ptr<Clock> clock_;
  // Everything an admission touches shares one cache line: a CAS on the load already owns it.
  alignas(64) std::atomic<std::int64_t> load_{0};
  // The clock time (ns since its epoch) at which the current cooldown ends; kNever when not cooling down.
  std::atomic<std::int64_t> cooling_until_{kNever};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> released_{0};
  alignas(64) std::atomic<std::int64_t> peak_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::int64_t> last_rejection_{kNever};  // ns on clock_
};

}  // namespace taskhive
