#pragma once
// BoundedStage: a flow-graph stage that never holds more than max_in_flight items, so a fast source feeding a
// slow stage waits instead of piling items up (lossless backpressure: memory stays bounded, nothing is
// dropped).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <utility>

#include <oneapi/tbb/flow_graph.h>

namespace taskhive {

template <typename In, typename Out>
class BoundedStage;

/// Where a stage body sends its results: emit() zero, one or many times per item. Valid only during the call.
template <typename Out>
class StageOutput {
 public:
  StageOutput(const StageOutput&) = delete;
  StageOutput& operator=(const StageOutput&) = delete;

  /// Passes `value` to the stage's successors. Returns false if none took it (there is none, or all refused);
  /// the value is then lost and counted in BoundedStage::dropped_outputs().
  bool emit(const Out& value) {
    if (put_(port_, value)) return true;
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

 private:
  template <typename, typename>
  friend class BoundedStage;
  using Put = bool (*)(void* port, const Out& value);
  StageOutput(void* port, Put put, std::atomic<std::uint64_t>& dropped) noexcept
      : port_(port), put_(put), dropped_(dropped) {}

  void* port_;
  Put put_;
  std::atomic<std::uint64_t>& dropped_;
};

struct BoundedStageOptions {
  /// The most items inside the stage at once, ever; the limiter's threshold, fixed at construction.
  std::size_t max_in_flight = 8;
  /// Bodies running at once: tbb::flow::serial, tbb::flow::unlimited or any N. The stage refuses items while
  /// they are all busy rather than queue them, so the source waits.
  std::size_t concurrency = tbb::flow::unlimited;
  /// The capacity to start with, 1..max_in_flight; 0 means max_in_flight. Set exactly, unlike a later
  /// set_capacity() (see there), because no item can be inside yet.
  std::size_t initial_capacity = 0;
};

namespace detail {

/// A BoundedStage's permits, apart from its item type: which of the limiter's max_in_flight permits items
/// hold, and which are held back to lower the capacity.
class StagePermits {
 public:
  StagePermits(tbb::flow::receiver<int>& decrementer, const BoundedStageOptions& options);
  StagePermits(const StagePermits&) = delete;
  StagePermits& operator=(const StagePermits&) = delete;

  void enter() noexcept;
  /// Returns the leaving item's permit to the limiter, or keeps it if capacity is still to be held back.
  void leave();
  void set_capacity(std::size_t capacity);

  std::size_t capacity() const noexcept { return capacity_.load(std::memory_order_acquire); }
  std::size_t in_flight() const noexcept { return inside_.load(std::memory_order_acquire); }
  std::size_t peak_in_flight() const noexcept { return peak_.load(std::memory_order_acquire); }
  std::size_t max_in_flight() const noexcept { return max_in_flight_; }
  /// Permits held back in the limiter now.
  std::size_t held_back() const;

 private:
  tbb::flow::receiver<int>& decrementer_;
  const std::size_t max_in_flight_;
  // The most items that can hold a permit at once: the stage refuses items beyond its concurrency.
  const std::size_t busy_bound_;
  std::mutex resize_mutex_;  // one set_capacity() at a time, its limiter put included
  mutable std::mutex mutex_;
  std::size_t held_ = 0;
  std::atomic<std::size_t> owed_{0};  // written under mutex_; read without it on the fast path of leave()
  std::atomic<std::size_t> capacity_;
  std::atomic<std::size_t> inside_{0};
  std::atomic<std::size_t> peak_{0};
};

/// Logs what a stage's error handler threw: it must not reach oneTBB.
void report_error_handler_failure(std::exception_ptr error) noexcept;

}  // namespace detail

/// A stage of a oneTBB flow graph behind a limiter_node, so that at most max_in_flight items are inside it
/// (admitted and not yet finished). An upstream input_node stops producing while the stage is full: items
/// wait in the source, not in memory. The body gets each item and a StageOutput to emit 0..n results.
///
/// @code
///   tbb::flow::graph g;
///   int next = 0;
///   tbb::flow::input_node<int> source(g, [&](tbb::flow_control& control) {
///     if (next == 1'000'000) control.stop();
///     return next++;
///   });
///   taskhive::BoundedStage<int, std::string> render(g, {.max_in_flight = 8},
///       [](const int& n, taskhive::StageOutput<std::string>& out) {
///         if (n % 3 != 0) out.emit(render_row(n));      // emit 0..n results per item
///       },
///       [](const int& n, std::exception_ptr) { ++bad_rows; });   // a throwing body ends up here
///   tbb::flow::function_node<std::string> sink(g, tbb::flow::serial, write_row);
///   tbb::flow::make_edge(source, render.input());
///   tbb::flow::make_edge(render.output(), sink);
///   source.activate();
///   g.wait_for_all();
/// @endcode
///
/// Guarantees: an item's permit is released when the body returns, however it returns (back to the limiter,
/// or kept to lower the capacity after set_capacity()); a body that throws is counted in failures(), its item
/// and exception go to the error handler, and the graph keeps running (no exception from the body or the
/// handler reaches oneTBB). The limiter is decremented with integers (limiter_node<In, int>), never with
/// continue_msg, whose decrementer in oneTBB 2021 waits for every predecessor and has stalled graphs.
///
/// Outputs are pushed: a successor must take them (a queueing function_node, a queue_node) or they are
/// dropped and counted. A BoundedStage's input refuses items while full, so chaining two needs a queue_node
/// between them, which neither stage bounds.
///
/// The body is copied by oneTBB: share state through references. Not copyable or movable; the graph must
/// outlive it and be idle (wait_for_all() returned) when it is destroyed. Counters and set_capacity() are
/// thread-safe.
///
/// Under UBSan build with -fno-sanitize=vptr: oneTBB 2021's flow graph trips the vptr check in its own header
/// (graph_task::destruct_and_deallocate casts a task after destroying it), with any node, not only this one.
template <typename In, typename Out>
class BoundedStage {
 public:
  using Body = std::function<void(const In&, StageOutput<Out>&)>;
  using ErrorHandler = std::function<void(const In&, std::exception_ptr)>;

  BoundedStage(tbb::flow::graph& graph, BoundedStageOptions options, Body body, ErrorHandler on_error = {})
      : body_(std::move(body)),
        on_error_(std::move(on_error)),
        limiter_(graph, checked(options, body_).max_in_flight),
        permits_(limiter_.decrementer(), options),
        stage_(graph, options.concurrency, [this](const In& item, Ports& ports) { run(item, ports); }) {
    tbb::flow::make_edge(limiter_, stage_);
  }
  BoundedStage(const BoundedStage&) = delete;
  BoundedStage& operator=(const BoundedStage&) = delete;

  /// Connect a predecessor here (make_edge(source, stage.input())).
  tbb::flow::receiver<In>& input() noexcept { return limiter_; }
  /// Connect successors here (make_edge(stage.output(), next)).
  tbb::flow::sender<Out>& output() noexcept { return tbb::flow::output_port<0>(stage_); }

  /// Items inside the stage's body now (from its start until its permit is released), and the most there
  /// have been at once.
  std::size_t in_flight() const noexcept { return permits_.in_flight(); }
  std::size_t peak_in_flight() const noexcept { return permits_.peak_in_flight(); }
  std::size_t max_in_flight() const noexcept { return permits_.max_in_flight(); }

  /// The capacity last set (max_in_flight until set_capacity() is called).
  std::size_t capacity() const noexcept { return permits_.capacity(); }
  /// The capacity in force now: capacity() once a shrink is complete, more while items still hold the
  /// permits it will keep.
  std::size_t effective_capacity() const { return permits_.max_in_flight() - permits_.held_back(); }

  /// Sets how many items (1..max_in_flight) may be inside at once. A limiter_node's threshold is fixed, so
  /// the stage holds back max_in_flight - capacity permits with negative decrements. Growing takes effect at
  /// once. Shrinking cannot evict items, and a limiter caps its count at its threshold, silently losing the
  /// part of a negative decrement beyond its free permits; so the stage holds back at once only the permits
  /// no item can be holding (those above its concurrency) and takes the rest from items as they leave: until
  /// then effective_capacity() items may be inside. A stage of unlimited concurrency can hold back none at
  /// once, so its shrink completes only as items pass through: an idle one shrunk from 8 to 3 still takes a
  /// burst of 8, and the first 5 of them to leave complete the shrink. Throws std::out_of_range outside
  /// 1..max_in_flight.
  void set_capacity(std::size_t capacity) { permits_.set_capacity(capacity); }

  /// Items whose body threw.
  std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }
  /// Outputs no successor took.
  std::uint64_t dropped_outputs() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  using Stage = tbb::flow::multifunction_node<In, std::tuple<Out>, tbb::flow::rejecting>;
  using Ports = typename Stage::output_ports_type;
  using Port = std::tuple_element_t<0, Ports>;

  static const BoundedStageOptions& checked(const BoundedStageOptions& options, const Body& body) {
    if (!body) throw std::invalid_argument("BoundedStage: the body must not be empty");
    if (options.max_in_flight == 0 || options.max_in_flight > static_cast<std::size_t>(INT32_MAX))
      throw std::invalid_argument("BoundedStage: max_in_flight must be between 1 and 2147483647");
    if (options.initial_capacity > options.max_in_flight)
      throw std::invalid_argument("BoundedStage: initial_capacity must not exceed max_in_flight");
    return options;
  }

  static bool put(void* port, const Out& value) { return static_cast<Port*>(port)->try_put(value); }

  void run(const In& item, Ports& ports) {
    permits_.enter();
    StageOutput<Out> output(&std::get<0>(ports), &put, dropped_);
    try {
      body_(item, output);
    } catch (...) {
      failures_.fetch_add(1, std::memory_order_relaxed);
      if (on_error_) {
        try {
          on_error_(item, std::current_exception());
        } catch (...) {
          detail::report_error_handler_failure(std::current_exception());
        }
      }
    }
    // Reached however the body ended: every exception stops above.
    permits_.leave();
  }

  Body body_;
  ErrorHandler on_error_;
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<std::uint64_t> dropped_{0};
  tbb::flow::limiter_node<In, int> limiter_;
  detail::StagePermits permits_;
  Stage stage_;
};

}  // namespace taskhive
