#pragma once
// ShardedCounters: event counters that threads bump on their own cache line, summed when read.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace taskhive::detail {

/// What the scheduler counts. A gauge is a difference of two counters (retry_wait = retry_entered -
/// retry_left), so a thread never writes a cache line that another thread writes for the same event.
enum class Event : std::size_t {
  submitted,
  rejected,
  succeeded,
  failed,
  retried,
  cancelled,
  timed_out,
  retry_entered,
  retry_left,
  kCount,
};

/// Counters sharded by thread: add() is an uncontended relaxed increment on the calling thread's shard while
/// there are no more threads than shards; get() sums the shards (exact at quiescence, approximate under
/// load).
class ShardedCounters {
 public:
  static constexpr std::size_t kShards = 8;

  void add(Event event, std::int64_t n = 1) noexcept {
    shards_[this_thread_shard()].values[static_cast<std::size_t>(event)].fetch_add(n,
                                                                                   std::memory_order_relaxed);
  }

  std::int64_t get(Event event) const noexcept {
    std::int64_t total = 0;
    for (const auto& shard : shards_) {
      total += shard.values[static_cast<std::size_t>(event)].load(std::memory_order_relaxed);
    }
    return total;
  }

 private:
  static std::size_t this_thread_shard() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t shard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
    return shard;
  }

  struct alignas(64) Shard {
    std::array<std::atomic<std::int64_t>, static_cast<std::size_t>(Event::kCount)> values{};
  };
  std::array<Shard, kShards> shards_{};
};

}  // namespace taskhive::detail
