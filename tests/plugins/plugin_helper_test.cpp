// The author helper (taskhive/plugin.hpp) on its own: each kind builder fills the C table so that calls
// through it reach the class, and no exception leaves a call. No dlopen here; the helper is header-only.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <taskhive/plugin.hpp>

namespace plugin = taskhive::plugin;

namespace {

std::vector<std::string> emitted;
std::vector<std::string> emitted_metadata;

int32_t collect(void*, const taskhive_item* item) {
  emitted.emplace_back(reinterpret_cast<const char*>(item->data), item->size);
  for (size_t i = 0; i < item->metadata_count; ++i)
    emitted_metadata.push_back(std::string(item->metadata[i].key) + "=" + item->metadata[i].value);
  return TASKHIVE_OK;
}

// Counts down from "from", one item per call, tagging each.
class Countdown {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"from", TASKHIVE_PARAM_INT, 1, nullptr, "first number"}};
  explicit Countdown(const plugin::Params& params) : next_(std::stoi(params.get_or("from", "0"))) {}
  bool process(plugin::Emitter& emit) {
    if (next_ < 0) return false;
    emit(std::to_string(next_--), {{"kind", "count"}});
    return true;
  }

 private:
  int next_;
};

std::vector<std::string> sunk;
int flushes = 0;
int finishes = 0;

struct Collect {
  explicit Collect(const plugin::Params&) {}
  void process(const plugin::Item& item) { sunk.emplace_back(item.text()); }
  void flush() { ++flushes; }
  void finish() { ++finishes; }
};

struct Minimal {  // a sink without flush or finish
  explicit Minimal(const plugin::Params&) {}
  void process(const plugin::Item&) { throw 42; }  // not even an exception class
};

struct Fails {
  static void run(const plugin::Params&) { throw std::bad_alloc(); }
};

struct Member {
  void run(const plugin::Params& params) { ran = params.get("x").value_or("?"); }
  static inline std::string ran;
};

}  // namespace

TEST_CASE("source<T> emits until T says it is done, then returns TASKHIVE_END", "[plugins][helper]") {
  const taskhive_stage_kind kind = plugin::source<Countdown>("countdown", "counts down");
  CHECK(kind.type == TASKHIVE_KIND_SOURCE);
  CHECK(std::string(kind.name) == "countdown");
  REQUIRE(kind.param_count == 1);
  CHECK(std::string(kind.params[0].name) == "from");
  CHECK(kind.run == nullptr);

  const taskhive_kv params[] = {{"from", "2"}};
  void* instance = nullptr;
  taskhive_error error{};
  REQUIRE(kind.create(params, 1, &instance, &error) == TASKHIVE_OK);
  emitted.clear();
  emitted_metadata.clear();
  int calls = 0;
  while (kind.process(instance, nullptr, &collect, nullptr, &error) == TASKHIVE_OK) ++calls;
  kind.destroy(instance);
  CHECK(calls == 3);
  CHECK(emitted == std::vector<std::string>{"2", "1", "0"});
  CHECK(emitted_metadata == std::vector<std::string>{"kind=count", "kind=count", "kind=count"});
}

TEST_CASE("sink<T> consumes items; flush and finish reach T when it has them", "[plugins][helper]") {
  const taskhive_stage_kind kind = plugin::sink<Collect>("collect");
  CHECK(kind.type == TASKHIVE_KIND_SINK);
  CHECK(kind.param_count == 0);
  void* instance = nullptr;
  taskhive_error error{};
  REQUIRE(kind.create(nullptr, 0, &instance, &error) == TASKHIVE_OK);
  sunk.clear();
  const std::string text = "abc";
  const taskhive_item item{reinterpret_cast<const uint8_t*>(text.data()), text.size(), nullptr, 0};
  CHECK(kind.process(instance, &item, nullptr, nullptr, &error) == TASKHIVE_OK);
  CHECK(kind.flush(instance, &error) == TASKHIVE_OK);
  CHECK(kind.finish(instance, &error) == TASKHIVE_OK);
  kind.destroy(instance);
  CHECK(sunk == std::vector<std::string>{"abc"});
  CHECK(flushes == 1);
  CHECK(finishes == 1);

  const taskhive_stage_kind minimal = plugin::sink<Minimal>("minimal");
  REQUIRE(minimal.create(nullptr, 0, &instance, &error) == TASKHIVE_OK);
  CHECK(minimal.flush(instance, &error) == TASKHIVE_OK);
  CHECK(minimal.finish(instance, &error) == TASKHIVE_OK);
  SECTION("something thrown that is not an exception class becomes \"unknown exception\"") {
    CHECK(minimal.process(instance, &item, nullptr, nullptr, &error) == TASKHIVE_ERR_FAILED);
    CHECK(std::string(error.message) == "unknown exception");
  }
  minimal.destroy(instance);
}

TEST_CASE("task<T> runs a static or a member run(params)", "[plugins][helper]") {
  taskhive_error error{};
  const taskhive_stage_kind fails = plugin::task<Fails>("fails");
  CHECK(fails.create == nullptr);
  CHECK(fails.run(nullptr, 0, &error) == TASKHIVE_ERR_NO_MEMORY);
  CHECK(std::string(error.message) == "out of memory");

  const taskhive_stage_kind member = plugin::task<Member>("member");
  const taskhive_kv params[] = {{"x", "yes"}};
  CHECK(member.run(params, 1, &error) == TASKHIVE_OK);
  CHECK(Member::ran == "yes");
}

TEST_CASE("an error message longer than the buffer is cut and NUL-terminated", "[plugins][helper]") {
  struct Long {
    static void run(const plugin::Params&) { throw std::runtime_error(std::string(2000, 'x')); }
  };
  taskhive_error error{};
  CHECK(plugin::task<Long>("long").run(nullptr, 0, &error) == TASKHIVE_ERR_FAILED);
  CHECK(std::string(error.message) == std::string(TASKHIVE_ERROR_MESSAGE_SIZE - 1, 'x'));
}
