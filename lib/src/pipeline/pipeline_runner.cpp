#include "taskhive/pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <tuple>
#include <variant>

#include <fmt/format.h>
#include <oneapi/tbb/flow_graph.h>

#include "taskhive/logging.hpp"
#include "taskhive/plugin_abi.h"
#include "taskhive/retry.hpp"
#include "taskhive/timer.hpp"

namespace taskhive {

namespace detail {

namespace {

namespace flow = tbb::flow;
using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t kMaxErrorsKept = 10;

// An item as the host keeps it: its own copy of what a plugin emitted.
struct Item {
  std::string bytes;
  std::vector<std::pair<std::string, std::string>> metadata;
};

// What one source item has become so far. Exactly one batch per source item reaches the end of the graph.
struct Batch {
  std::uint64_t seq = 0;
  std::vector<Item> items;
  // A stage's progress through `items`, kept while a retry waits in the timer.
  std::vector<Item> outputs;
  std::size_t resume = 0;
  int attempt = 0;
};
using BatchPtr = std::shared_ptr<Batch>;

// Borrowed C views of an item, valid while the item lives.
struct ItemView {
  explicit ItemView(const Item& item) {
    pairs.reserve(item.metadata.size());
    for (const auto& [key, value] : item.metadata) pairs.push_back({key.c_str(), value.c_str()});
    view = {reinterpret_cast<const uint8_t*>(item.bytes.data()), item.bytes.size(), pairs.data(),
            pairs.size()};
  }
  std::vector<taskhive_kv> pairs;
  taskhive_item view{};
};

// What a plugin call emitted, and why the host refused an emit, if it did.
struct Emitted {
  std::vector<Item> items;
  std::string refusal;  // the first refused emit: the call fails with this, whatever the plugin returns
};

// The emit callback. Called from plugin code, so nothing may escape it (an exception cannot cross the C ABI):
// a malformed item is refused with TASKHIVE_ERR_INVALID_PARAM, and no memory with TASKHIVE_ERR_NO_MEMORY.
int32_t collect(void* context, const taskhive_item* item) noexcept {
  auto* out = static_cast<Emitted*>(context);
  const auto refuse = [&](int32_t code, const char* why) {
    if (out->refusal.empty()) out->refusal = why;
    return code;
  };
  if (item == nullptr) return refuse(TASKHIVE_ERR_INVALID_PARAM, "the plugin emitted a NULL item");
  if (item->size > 0 && item->data == nullptr)
    return refuse(TASKHIVE_ERR_INVALID_PARAM,
                  "the plugin emitted an item with NULL data and a non-zero size");
  if (item->metadata_count > 0 && item->metadata == nullptr)
    return refuse(TASKHIVE_ERR_INVALID_PARAM, "the plugin emitted an item with NULL metadata and a count");
  for (std::size_t i = 0; i < item->metadata_count; ++i) {
    if (item->metadata[i].key == nullptr || item->metadata[i].value == nullptr)
      return refuse(TASKHIVE_ERR_INVALID_PARAM,
                    "the plugin emitted an item with a NULL metadata key or value");
  }
  try {
    Item copy;
    if (item->size > 0) copy.bytes.assign(reinterpret_cast<const char*>(item->data), item->size);
    copy.metadata.reserve(item->metadata_count);
    for (std::size_t i = 0; i < item->metadata_count; ++i)
      copy.metadata.emplace_back(item->metadata[i].key, item->metadata[i].value);
    out->items.push_back(std::move(copy));
  } catch (...) {
    return refuse(TASKHIVE_ERR_NO_MEMORY, "the host ran out of memory copying an emitted item");
  }
  return TASKHIVE_OK;
}

// Sets `key` to `value`, replacing an earlier value: keys are unique within an item.
void set_metadata(Item& item, std::string_view key, std::string value) {
  for (auto& [k, v] : item.metadata) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  item.metadata.emplace_back(std::string(key), std::move(value));
}

std::string message_of(const taskhive_error& error, int32_t code) {
  const std::string text(error.message, strnlen(error.message, sizeof error.message));
  return text.empty() ? fmt::format("failed with code {}", code) : text;
}

}  // namespace

// One stage of the run: its lease, its kind, its params as C strings, a pool of instances, its counters.
struct StageRuntime {
  const Stage* config = nullptr;
  PluginLease lease;
  const taskhive_stage_kind* kind = nullptr;
  std::vector<std::string> keys, values;
  std::vector<taskhive_kv> params;
  RetryPolicy retry;
  StageRuntime* dead_letter = nullptr;
  bool is_dead_letter_sink = false;  // a sink named by some stage's dead_letter: it gets only dead letters

  bool is_sink() const noexcept { return kind->type == TASKHIVE_KIND_SINK; }
  /// For the summary: "source", "stage", "sink" or "dead letter".
  std::string role() const {
    if (is_dead_letter_sink) return "dead letter";
    return kind->type == TASKHIVE_KIND_TRANSFORM ? "stage" : std::string(kind_type_name(kind->type));
  }
  // A transform's node, for retries to come back to; set before the graph runs.
  flow::multifunction_node<BatchPtr, std::tuple<BatchPtr>>* node = nullptr;

  std::mutex pool_mutex;
  std::vector<void*> idle;
  std::vector<void*> all;

  std::atomic<std::uint64_t> in{0}, out{0}, failed{0}, retries{0}, dead_lettered{0};

  ~StageRuntime() {
    for (void* instance : all) kind->destroy(instance);
  }

  // A fresh instance, or an error message.
  std::variant<void*, std::string> create_instance() {
    void* instance = nullptr;
    taskhive_error error{};
    const int32_t code = kind->create(params.data(), params.size(), &instance, &error);
    if (code != TASKHIVE_OK) return message_of(error, code);
    std::lock_guard lock(pool_mutex);
    all.push_back(instance);
    return instance;
  }
  std::variant<void*, std::string> acquire() {
    {
      std::lock_guard lock(pool_mutex);
      if (!idle.empty()) {
        void* instance = idle.back();
        idle.pop_back();
        return instance;
      }
    }
    return create_instance();
  }
  void release(void* instance) {
    std::lock_guard lock(pool_mutex);
    idle.push_back(instance);
  }
};

class PipelineState {
 public:
  PipelineState(const Pipeline& pipeline, Scheduler& scheduler)
      : pipeline_(pipeline), scheduler_(scheduler) {}

  LoadResult<bool> prepare(PluginCatalog& plugins) {
    auto add = [&](const Stage& stage, std::uint32_t type) -> std::optional<std::string> {
      auto runtime = std::make_unique<StageRuntime>();
      runtime->config = &stage;
      auto lease = plugins.lease(stage.uses.plugin);
      if (!lease) return fmt::format("stage \"{}\": {}", *stage.name, lease.error());
      runtime->lease = std::move(lease.value());
      const taskhive_plugin_descriptor* descriptor = runtime->lease.descriptor();
      for (std::size_t i = 0; i < descriptor->kind_count; ++i)
        if (stage.uses.kind == descriptor->kinds[i].name) runtime->kind = &descriptor->kinds[i];
      if (!runtime->kind)
        return fmt::format("stage \"{}\": plugin \"{}\" {} has no kind \"{}\"", *stage.name,
                           stage.uses.plugin, runtime->lease.record().version, stage.uses.kind);
      if (runtime->kind->type != type)
        return fmt::format("stage \"{}\": {} is a {}, not a {}", *stage.name, stage.uses.text(),
                           kind_type_name(runtime->kind->type), kind_type_name(type));
      for (const auto& [key, value] : stage.params) {
        runtime->keys.push_back(key);
        runtime->values.push_back(value.value);
      }
      for (std::size_t i = 0; i < runtime->keys.size(); ++i)
        runtime->params.push_back({runtime->keys[i].c_str(), runtime->values[i].c_str()});
      runtime->retry = RetryPolicy{.max_retries = *stage.retry.limit,
                                   .initial_delay = *stage.retry.backoff.initial,
                                   .multiplier = *stage.retry.backoff.factor,
                                   .max_delay = *stage.retry.backoff.max,
                                   .jitter = *stage.retry.backoff.jitter};
      // One instance now: a create() that refuses its params fails the run before any item moves.
      auto first = runtime->create_instance();
      if (auto* error = std::get_if<std::string>(&first))
        return fmt::format("stage \"{}\" ({}): {}", *stage.name, stage.uses.text(), *error);
      runtime->release(std::get<void*>(first));
      stages_.push_back(std::move(runtime));
      return std::nullopt;
    };
    using Result = LoadResult<bool>;
    if (auto error = add(pipeline_.source, TASKHIVE_KIND_SOURCE)) return Result::failure(*error);
    for (const auto& stage : pipeline_.stages)
      if (auto error = add(stage, TASKHIVE_KIND_TRANSFORM)) return Result::failure(*error);
    for (const auto& sink : pipeline_.sinks)
      if (auto error = add(sink, TASKHIVE_KIND_SINK)) return Result::failure(*error);
    // Dead letters: a sink named by some stage's on_error: dead_letter receives only those.
    for (auto& stage : stages_) {
      if (*stage->config->on_error != OnError::dead_letter) continue;
      for (auto& sink : stages_)
        if (sink->is_sink() && *sink->config->name == *stage->config->dead_letter)
          stage->dead_letter = sink.get();
      if (!stage->dead_letter)
        return Result::failure(fmt::format("stage \"{}\": no sink named \"{}\" for its dead letters",
                                           *stage->config->name, *stage->config->dead_letter));
      stage->dead_letter->is_dead_letter_sink = true;
    }
    return true;
  }

  PipelineSummary run() {
    const auto started = SteadyClock::now();
    scheduler_.execute([this] { run_graph(); });
    // Cancelled: items in flight are dropped, but what a sink has taken in and counted is written out.
    if (!cancelled_.load()) {
      finish_sinks();
    } else {
      flush_sinks();
    }
    PipelineSummary summary;
    summary.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started);
    summary.source_items = next_seq_;
    summary.stopped = stopped_.load();
    summary.cancelled = cancelled_.load();
    {
      std::lock_guard lock(errors_mutex_);
      summary.fatal_error = fatal_;
      summary.first_errors = errors_;
    }
    for (const auto& stage : stages_)
      summary.stages.push_back({*stage->config->name, stage->role(), stage->in.load(), stage->out.load(),
                                stage->failed.load(), stage->retries.load(), stage->dead_lettered.load()});
    return summary;
  }

  void stop() noexcept { stopped_.store(true); }
  void stop_when(std::function<bool()> condition) { stop_condition_ = std::move(condition); }

  void cancel() noexcept {
    stopped_.store(true);
    cancelled_.store(true);
    // Retries waiting out their backoff come back at once, to be passed by. Whoever takes an entry out of
    // pending_retries_ (this, or the timer's callback) resumes it, exactly once.
    std::map<std::uint64_t, PendingRetry> taken;
    {
      std::lock_guard lock(retry_mutex_);
      taken.swap(pending_retries_);
    }
    for (auto& [key, pending] : taken) {
      if (pending.timer_id != 0) timer_.cancel(pending.timer_id);
      pending.resume();
    }
  }

 private:
  using StageNode = flow::multifunction_node<BatchPtr, std::tuple<BatchPtr>>;

  void note_error(const StageRuntime& stage, const std::string& message) {
    std::lock_guard lock(errors_mutex_);
    if (errors_.size() < kMaxErrorsKept)
      errors_.push_back(fmt::format("{}: {}", *stage.config->name, message));
  }

  // The item failed for good at `stage`: count it, then do what its on_error says.
  void item_failed(StageRuntime& stage, Item item, const std::string& message) {
    stage.failed.fetch_add(1, std::memory_order_relaxed);
    note_error(stage, message);
    switch (*stage.config->on_error) {
      case OnError::fail: {
        std::lock_guard lock(errors_mutex_);
        if (fatal_.empty())
          fatal_ = fmt::format("stage \"{}\" failed an item and its on_error is fail: {}",
                               *stage.config->name, message);
        stopped_.store(true);
        break;
      }
      case OnError::skip:
        break;
      case OnError::dead_letter: {
        stage.dead_lettered.fetch_add(1, std::memory_order_relaxed);
        // Replaced, not added, when the item was dead-lettered before (or its plugin set them): one key each.
        set_metadata(item, "error", message);
        set_metadata(item, "stage", *stage.config->name);
        auto letter = std::make_shared<Batch>();
        letter->items.push_back(std::move(item));
        dead_letter_nodes_.at(stage.dead_letter)->try_put(letter);
        break;
      }
    }
  }

  // One plugin call on `item` with an instance of `stage`; the outputs land in `outputs` only on success.
  std::optional<std::string> call(StageRuntime& stage, const Item* item, std::vector<Item>& outputs,
                                  int32_t& code) {
    auto instance = stage.acquire();
    if (auto* error = std::get_if<std::string>(&instance)) {
      code = TASKHIVE_ERR_FAILED;
      return "cannot create an instance: " + *error;
    }
    void* self = std::get<void*>(instance);
    Emitted emitted;
    taskhive_error error{};
    const auto limit = *stage.config->timeout;
    const auto began = limit.count() > 0 ? SteadyClock::now() : SteadyClock::time_point{};
    if (item) {
      ItemView view(*item);
      code = stage.kind->process(self, &view.view, stage.kind->type == TASKHIVE_KIND_SINK ? nullptr : collect,
                                 stage.kind->type == TASKHIVE_KIND_SINK ? nullptr : &emitted, &error);
    } else {
      code = stage.kind->process(self, nullptr, collect, &emitted, &error);
    }
    // Read only for a stage with a timeout: two clock reads a call are a few percent of a cheap stage.
    const auto took = limit.count() > 0
                          ? std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - began)
                          : std::chrono::milliseconds::zero();
    stage.release(self);
    if (!emitted.refusal.empty()) {
      if (code == TASKHIVE_OK || code == TASKHIVE_END) code = TASKHIVE_ERR_INVALID_PARAM;
      return emitted.refusal;
    }
    if (code != TASKHIVE_OK && code != TASKHIVE_END) return message_of(error, code);
    if (limit.count() > 0 && took > limit) {
      if (stage.kind->type == TASKHIVE_KIND_SINK) {
        // A sink's write has happened: failing the call now would retry it (writing the item twice) or count
        // a written item as failed. The overrun is reported, and the item counts as written.
        note_error(stage, fmt::format("a call took {}, over its timeout of {} (the item was written)",
                                      format_duration(took), format_duration(limit)));
        return std::nullopt;
      }
      return fmt::format("timed out: the call took {}, over its timeout of {}", format_duration(took),
                         format_duration(limit));
    }
    for (auto& e : emitted.items) outputs.push_back(std::move(e));
    return std::nullopt;
  }

  // The body of a transform stage's node. Returns false if the batch is parked for a retry.
  bool transform(StageRuntime& stage, const BatchPtr& batch) {
    if (cancelled_.load(std::memory_order_relaxed)) {
      batch->items.clear();
      batch->outputs.clear();
      return true;
    }
    if (batch->resume == 0 && batch->attempt == 0)
      stage.in.fetch_add(batch->items.size(), std::memory_order_relaxed);
    for (std::size_t i = batch->resume; i < batch->items.size(); ++i) {
      int32_t code = TASKHIVE_OK;
      auto error = call(stage, &batch->items[i], batch->outputs, code);
      if (!error) {
        batch->attempt = 0;
        continue;
      }
      if (batch->attempt < stage.retry.max_retries && !cancelled_.load()) {
        batch->resume = i;
        schedule_retry(stage, batch);
        return false;
      }
      batch->attempt = 0;
      item_failed(stage, std::move(batch->items[i]), *error);
    }
    batch->items = std::move(batch->outputs);
    batch->outputs.clear();
    batch->resume = 0;
    stage.out.fetch_add(batch->items.size(), std::memory_order_relaxed);
    return true;
  }

  // Parks the batch in the timer for the stage's backoff, then puts it back into the stage's node (past the
  // limiter: it still holds its place there). The graph waits for it meanwhile (reserve_wait).
  void schedule_retry(StageRuntime& stage, const BatchPtr& batch) {
    stage.retries.fetch_add(1, std::memory_order_relaxed);
    thread_local std::minstd_rand random{std::random_device{}()};
    const auto delay =
        stage.retry.delay(batch->attempt, std::uniform_real_distribution<double>(0, 1)(random));
    ++batch->attempt;
    graph_->reserve_wait();
    flow::graph* graph = graph_;
    auto* node = stage.node;
    auto resume = [graph, node, batch] {
      node->try_put(batch);
      graph->release_wait();
    };
    std::uint64_t key = 0;
    {
      std::lock_guard lock(retry_mutex_);
      key = next_retry_key_++;
      pending_retries_.emplace(key, PendingRetry{0, resume});
    }
    // Not under retry_mutex_: the timer's thread may be running a callback that waits for it.
    const TimerId id = timer_.schedule_after(delay, [this, key] {
      std::function<void()> resume_it;
      {
        std::lock_guard lock(retry_mutex_);
        const auto it = pending_retries_.find(key);
        if (it == pending_retries_.end()) return;  // cancel() took it and resumed it
        resume_it = std::move(it->second.resume);
        pending_retries_.erase(it);
      }
      resume_it();
    });
    std::function<void()> resume_now;
    {
      std::lock_guard lock(retry_mutex_);
      if (const auto it = pending_retries_.find(key); it != pending_retries_.end()) {
        it->second.timer_id = id;
        // A cancel() that emptied pending_retries_ before this entry went in would leave it to wait out its
        // whole backoff. cancel() sets cancelled_ before it takes the lock to empty the map, so if it is
        // still unset here, that cancel() has yet to take the lock and will find this entry.
        if (cancelled_.load()) {
          resume_now = std::move(it->second.resume);
          pending_retries_.erase(it);
        }
      }
    }
    if (resume_now) {
      timer_.cancel(id);
      resume_now();
    }
  }

  // Every normal sink gets every item of the batch, in order.
  void deliver(const BatchPtr& batch) {
    if (cancelled_.load(std::memory_order_relaxed)) return;
    for (auto& stage : stages_) {
      if (!stage->is_sink() || stage->is_dead_letter_sink) continue;
      consume(*stage, batch->items, /*copy=*/true);
    }
  }

  void consume(StageRuntime& sink, std::vector<Item>& items, bool copy) {
    for (auto& item : items) {
      sink.in.fetch_add(1, std::memory_order_relaxed);
      std::vector<Item> none;
      int32_t code = TASKHIVE_OK;
      std::optional<std::string> error;
      for (int attempt = 0;; ++attempt) {
        error = call(sink, &item, none, code);
        if (!error || attempt >= sink.retry.max_retries || cancelled_.load()) break;
        sink.retries.fetch_add(1, std::memory_order_relaxed);  // sinks retry at once: they are serial
      }
      if (!error)
        sink.out.fetch_add(1, std::memory_order_relaxed);
      else
        item_failed(sink, copy ? item : std::move(item), *error);
    }
  }

  // The source node's body: one item per call, from the buffer of what the source last emitted.
  BatchPtr pull(tbb::flow_control& control) {
    StageRuntime& source = *stages_.front();
    for (;;) {
      if (stop_condition_ && !stopped_.load(std::memory_order_relaxed) && stop_condition_()) stop();
      if (stopped_.load(std::memory_order_relaxed) || source_done_) {
        control.stop();
        return nullptr;
      }
      if (!buffered_.empty()) {
        auto batch = std::make_shared<Batch>();
        batch->seq = next_seq_++;
        batch->items.push_back(std::move(buffered_.front()));
        buffered_.pop_front();
        // Counted as it goes on, not as the source emits it: a run stopped early leaves some unsent.
        source.out.fetch_add(1, std::memory_order_relaxed);
        return batch;
      }
      int32_t code = TASKHIVE_OK;
      std::vector<Item> emitted;
      auto error = call(source, nullptr, emitted, code);
      // As StageStats::in says: the end-of-stream call that only says so is not counted.
      if (!emitted.empty() || error) source.in.fetch_add(1, std::memory_order_relaxed);
      for (auto& item : emitted) buffered_.push_back(std::move(item));
      if (error) item_failed(source, Item{}, *error);
      if (code == TASKHIVE_END) source_done_ = true;
    }
  }

  void run_graph() {
    flow::graph graph;
    graph_ = &graph;
    std::size_t bound = 1;
    for (const auto& stage : stages_) bound = std::max(bound, *stage->config->max_in_flight);

    flow::input_node<BatchPtr> source(graph, [this](tbb::flow_control& control) { return pull(control); });
    flow::limiter_node<BatchPtr, int> in_flight(graph, bound);
    flow::make_edge(source, in_flight);
    flow::sender<BatchPtr>* tail = &in_flight;

    std::vector<std::unique_ptr<flow::queue_node<BatchPtr>>> queues;
    std::vector<std::unique_ptr<flow::limiter_node<BatchPtr, int>>> limiters;
    std::vector<std::unique_ptr<StageNode>> nodes;
    for (auto& stage_ptr : stages_) {
      StageRuntime& stage = *stage_ptr;
      if (stage.kind->type != TASKHIVE_KIND_TRANSFORM) continue;
      // A stage whose max_in_flight is the pipeline's bound cannot fill up before the in-flight limiter
      // does (which counts every item in the pipeline), so its own queue and limiter would only cost each
      // item two more hand-offs (about a tenth of grep-tree's time): they exist only where they can bind.
      flow::limiter_node<BatchPtr, int>* limiter_ptr = nullptr;
      if (*stage.config->max_in_flight < bound) {
        queues.push_back(std::make_unique<flow::queue_node<BatchPtr>>(graph));
        limiters.push_back(
            std::make_unique<flow::limiter_node<BatchPtr, int>>(graph, *stage.config->max_in_flight));
        limiter_ptr = limiters.back().get();
      }
      const std::size_t concurrency = *stage.config->concurrency == unlimited_concurrency
                                          ? std::size_t{flow::unlimited}
                                          : *stage.config->concurrency;
      auto& node = nodes.emplace_back(std::make_unique<StageNode>(
          graph, concurrency,
          [this, &stage, limiter_ptr](const BatchPtr& batch, StageNode::output_ports_type& ports) {
            if (!transform(stage, batch)) return;  // parked for a retry, still inside the stage
            std::get<0>(ports).try_put(batch);
            if (limiter_ptr) limiter_ptr->decrementer().try_put(1);
          },
          static_cast<flow::node_priority_t>(std::max(0, *stage.config->priority))));
      stage.node = node.get();
      if (limiter_ptr) {
        flow::make_edge(*tail, *queues.back());
        flow::make_edge(*queues.back(), *limiter_ptr);
        flow::make_edge(*limiter_ptr, *node);
      } else {
        flow::make_edge(*tail, *node);
      }
      tail = &flow::output_port<0>(*node);
    }

    flow::function_node<BatchPtr, flow::continue_msg> sinks(graph, flow::serial, [&](const BatchPtr& batch) {
      deliver(batch);
      in_flight.decrementer().try_put(1);
      return flow::continue_msg{};
    });
    std::optional<flow::sequencer_node<BatchPtr>> in_order;
    if (*pipeline_.ordered) {
      in_order.emplace(graph, [](const BatchPtr& batch) { return static_cast<std::size_t>(batch->seq); });
      flow::make_edge(*tail, *in_order);
      flow::make_edge(*in_order, sinks);
    } else {
      flow::make_edge(*tail, sinks);
    }

    std::vector<std::unique_ptr<flow::function_node<BatchPtr, flow::continue_msg>>> letters;
    for (auto& stage_ptr : stages_) {
      if (!stage_ptr->is_dead_letter_sink) continue;
      StageRuntime* sink = stage_ptr.get();
      auto& node = letters.emplace_back(std::make_unique<flow::function_node<BatchPtr, flow::continue_msg>>(
          graph, flow::serial, [this, sink](const BatchPtr& batch) {
            if (!cancelled_.load()) consume(*sink, batch->items, /*copy=*/false);
            return flow::continue_msg{};
          }));
      dead_letter_nodes_[sink] = node.get();
    }

    source.activate();
    graph.wait_for_all();
    graph_ = nullptr;
  }

  // The end of a stream that ended normally: each sink's finish (ABI: once, before destroy).
  void finish_sinks() { end_sinks(&taskhive_stage_kind::finish, "finish"); }
  // The end of a cancelled run: each sink's flush (ABI: at any time between process calls); the stream did
  // not end, so finish is not called.
  void flush_sinks() { end_sinks(&taskhive_stage_kind::flush, "flush"); }

  void end_sinks(int32_t (*taskhive_stage_kind::*call)(void*, taskhive_error*), std::string_view what) {
    for (auto& stage : stages_) {
      if (!stage->is_sink() || !(stage->kind->*call)) continue;
      std::lock_guard lock(stage->pool_mutex);
      for (void* instance : stage->all) {
        taskhive_error error{};
        const int32_t code = (stage->kind->*call)(instance, &error);
        if (code != TASKHIVE_OK) {
          const std::string message = fmt::format("{} failed: {}", what, message_of(error, code));
          note_error(*stage, message);
          std::lock_guard errors(errors_mutex_);
          if (fatal_.empty()) fatal_ = fmt::format("sink \"{}\": {}", *stage->config->name, message);
        }
      }
    }
  }

  const Pipeline& pipeline_;
  Scheduler& scheduler_;
  std::vector<std::unique_ptr<StageRuntime>> stages_;  // source, stages, sinks: config order
  std::map<const StageRuntime*, flow::function_node<BatchPtr, flow::continue_msg>*> dead_letter_nodes_;
  flow::graph* graph_ = nullptr;

  // The source's state; only its (serial) node touches it.
  std::deque<Item> buffered_;
  std::function<bool()> stop_condition_;
  bool source_done_ = false;
  std::uint64_t next_seq_ = 0;

  std::atomic<bool> stopped_{false}, cancelled_{false};
  std::mutex errors_mutex_;
  std::string fatal_;
  std::vector<std::string> errors_;

  struct PendingRetry {
    TimerId timer_id = 0;  // 0 until schedule_after returned
    std::function<void()> resume;
  };
  std::mutex retry_mutex_;
  std::uint64_t next_retry_key_ = 0;
  std::map<std::uint64_t, PendingRetry> pending_retries_;
  Timer timer_{Clock::steady(), "taskhive-retry"};  // last: its thread stops before the rest is destroyed
};

}  // namespace detail

std::uint64_t PipelineSummary::failed_items() const noexcept {
  std::uint64_t total = 0;
  for (const auto& stage : stages) total += stage.failed;
  return total;
}

bool PipelineSummary::ok() const noexcept {
  return fatal_error.empty() && failed_items() == 0 && !cancelled;
}

std::string format_summary(const PipelineSummary& summary) {
  std::size_t width = 5;
  for (const auto& stage : summary.stages) width = std::max(width, stage.name.size());
  std::string out = fmt::format("{:<{}}  {:<11}  {:>10}  {:>10}  {:>8}  {:>8}  {:>12}\n", "stage", width,
                                "role", "in", "out", "failed", "retries", "dead letters");
  for (const auto& stage : summary.stages)
    out += fmt::format("{:<{}}  {:<11}  {:>10}  {:>10}  {:>8}  {:>8}  {:>12}\n", stage.name, width,
                       stage.role, stage.in, stage.out, stage.failed, stage.retries, stage.dead_lettered);
  out += fmt::format(
      "{} source items in {}{}{}\n", summary.source_items, format_duration(summary.elapsed),
      summary.cancelled ? ", cancelled"
      : summary.stopped ? ", stopped early"
                        : "",
      summary.failed_items() == 0 ? "" : fmt::format(", {} failed items", summary.failed_items()));
  if (!summary.fatal_error.empty()) out += "error: " + summary.fatal_error + "\n";
  for (const auto& error : summary.first_errors) out += "  " + error + "\n";
  return out;
}

PipelineRun::PipelineRun(std::unique_ptr<detail::PipelineState> state) : state_(std::move(state)) {}
PipelineRun::~PipelineRun() = default;

LoadResult<std::unique_ptr<PipelineRun>> PipelineRun::create(const Pipeline& pipeline, PluginCatalog& plugins,
                                                             Scheduler& scheduler) {
  auto state = std::make_unique<detail::PipelineState>(pipeline, scheduler);
  if (auto prepared = state->prepare(plugins); !prepared)
    return LoadResult<std::unique_ptr<PipelineRun>>::failure(prepared.error());
  return std::unique_ptr<PipelineRun>(new PipelineRun(std::move(state)));
}

PipelineSummary PipelineRun::run() {
  return state_->run();
}
void PipelineRun::stop() noexcept {
  state_->stop();
}
void PipelineRun::cancel() noexcept {
  state_->cancel();
}
void PipelineRun::stop_when(std::function<bool()> condition) {
  state_->stop_when(std::move(condition));
}

}  // namespace taskhive
