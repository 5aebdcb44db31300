// The sample plugin's kinds work through the C ABI alone, the way a host calls them, and the author helper
// turns exceptions into codes and messages at the boundary.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <taskhive/plugin_abi.h>

#include <taskhive/loader.hpp>
#include "plugins/temp_dir.hpp"

namespace fs = std::filesystem;

namespace {

// What a host keeps of an emitted item: its own copy.
struct Emitted {
  std::string bytes;
  std::map<std::string, std::string> metadata;
};

struct Collector {
  std::vector<Emitted> items;
  int32_t answer = TASKHIVE_OK;  // what emit returns, to play a host that cancels

  static int32_t emit(void* self, const taskhive_item* item) {
    auto* collector = static_cast<Collector*>(self);
    Emitted copy{std::string(reinterpret_cast<const char*>(item->data), item->size), {}};
    for (size_t i = 0; i < item->metadata_count; ++i)
      copy.metadata.emplace(item->metadata[i].key, item->metadata[i].value);
    collector->items.push_back(std::move(copy));
    return collector->answer;
  }
};

const taskhive_stage_kind& kind_named(const taskhive_plugin_descriptor& descriptor, const std::string& name) {
  for (size_t i = 0; i < descriptor.kind_count; ++i)
    if (descriptor.kinds[i].name == name) return descriptor.kinds[i];
  FAIL("no kind " << name);
  std::abort();
}

// Loads one plugin from a private copy, so the test does not depend on the build tree's permissions.
taskhive::PluginRegistry load(const taskhive::test::TempDir& dir, const fs::path& plugin) {
  taskhive::test::install(plugin, dir / plugin.filename().string());
  auto result = taskhive::load_plugins({.dirs = {dir.path()}});
  INFO(result.error());
  REQUIRE(result);
  return std::move(result).value();
}

}  // namespace

TEST_CASE("the sample plugin's upper transform works through the C ABI", "[plugins][abi]") {
  taskhive::test::TempDir dir;
  auto registry = load(dir, fs::path(TASKHIVE_SAMPLE_PLUGIN_DIR) / "sample_upper.so");
  const auto* record = registry.find("sample_upper");
  REQUIRE(record != nullptr);
  CHECK(record->version == "1.0.0");
  REQUIRE(record->kinds.size() == 2);
  CHECK(record->kinds[0].name == "upper");
  CHECK(record->kinds[0].params.size() == 2);
  CHECK(record->kinds[0].params[1].name == "repeat");
  CHECK(record->kinds[0].params[1].type == "int");
  CHECK(record->kinds[0].params[1].default_value == "1");
  CHECK(record->kinds[1].type == "task");
  CHECK(record->kinds[1].params[0].required);

  const taskhive_plugin_descriptor* descriptor = registry.descriptor("sample_upper");
  REQUIRE(descriptor != nullptr);
  CHECK(descriptor->abi_version == TASKHIVE_PLUGIN_ABI_VERSION);
  const auto& upper = kind_named(*descriptor, "upper");
  REQUIRE(upper.type == TASKHIVE_KIND_TRANSFORM);

  const taskhive_kv params[] = {{"prefix", "> "}, {"repeat", "2"}};
  void* instance = nullptr;
  taskhive_error error{};
  REQUIRE(upper.create(params, 2, &instance, &error) == TASKHIVE_OK);

  SECTION("each item comes out uppercased, as often as asked, with its metadata") {
    const std::string text = "Hello, plugin";
    const taskhive_kv metadata[] = {{"source", "test"}, {"line", "7"}};
    const taskhive_item item{reinterpret_cast<const uint8_t*>(text.data()), text.size(), metadata, 2};
    Collector out;
    CHECK(upper.process(instance, &item, &Collector::emit, &out, &error) == TASKHIVE_OK);
    REQUIRE(out.items.size() == 2);
    for (const auto& emitted : out.items) {
      CHECK(emitted.bytes == "> HELLO, PLUGIN");
      CHECK(emitted.metadata == std::map<std::string, std::string>{{"source", "test"}, {"line", "7"}});
    }
  }
  SECTION("an empty item gives the prefix alone") {
    const taskhive_item item{nullptr, 0, nullptr, 0};
    Collector out;
    CHECK(upper.process(instance, &item, &Collector::emit, &out, &error) == TASKHIVE_OK);
    REQUIRE(out.items.size() == 2);
    CHECK(out.items[0].bytes == "> ");
  }
  SECTION("a host that refuses more items stops the transform with its code") {
    const std::string text = "x";
    const taskhive_item item{reinterpret_cast<const uint8_t*>(text.data()), text.size(), nullptr, 0};
    Collector out;
    out.answer = TASKHIVE_ERR_CANCELLED;
    CHECK(upper.process(instance, &item, &Collector::emit, &out, &error) == TASKHIVE_ERR_CANCELLED);
    CHECK(out.items.size() == 1);  // it stopped after the first refusal
    CHECK(std::string(error.message) == "the host stopped accepting items");
  }
  upper.destroy(instance);
}

TEST_CASE("exceptions in a plugin cross the boundary as codes and messages", "[plugins][abi]") {
  taskhive::test::TempDir dir;
  auto registry = load(dir, fs::path(TASKHIVE_SAMPLE_PLUGIN_DIR) / "sample_upper.so");
  const auto* descriptor = registry.descriptor("sample_upper");
  REQUIRE(descriptor != nullptr);

  SECTION("plugin::Error keeps its code: create with a bad parameter") {
    const auto& upper = kind_named(*descriptor, "upper");
    const taskhive_kv params[] = {{"repeat", "-1"}};
    void* instance = nullptr;
    taskhive_error error{};
    CHECK(upper.create(params, 1, &instance, &error) == TASKHIVE_ERR_INVALID_PARAM);
    CHECK(std::string(error.message) == "repeat must be an integer from 0 to 1000000 (got -1)");
    CHECK(instance == nullptr);
    // Past what an int holds: a clear refusal, not std::stoi's out_of_range ("stoi").
    const taskhive_kv huge[] = {{"repeat", "99999999999"}};
    taskhive_error overflow{};
    CHECK(upper.create(huge, 1, &instance, &overflow) == TASKHIVE_ERR_INVALID_PARAM);
    CHECK(std::string(overflow.message) == "repeat must be an integer from 0 to 1000000 (got 99999999999)");
  }
  SECTION("a parameter that is not an integer is refused by name, not with a library's message") {
    const auto& upper = kind_named(*descriptor, "upper");
    const taskhive_kv params[] = {{"repeat", "many"}};  // std::stoi used to throw "stoi" here
    void* instance = nullptr;
    taskhive_error error{};
    CHECK(upper.create(params, 1, &instance, &error) == TASKHIVE_ERR_INVALID_PARAM);
    CHECK(std::string(error.message) == "repeat must be an integer from 0 to 1000000 (got many)");
  }
  SECTION("a task runs with its parameters; a standard exception becomes TASKHIVE_ERR_FAILED with what()") {
    const auto& write = kind_named(*descriptor, "write_upper");
    REQUIRE(write.type == TASKHIVE_KIND_TASK);
    CHECK(write.create == nullptr);
    taskhive::test::TempDir out_dir;
    const std::string file = (out_dir / "out.txt").string();

    const taskhive_kv params[] = {{"path", file.c_str()}, {"text", "done well"}};
    taskhive_error error{};
    CHECK(write.run(params, 2, &error) == TASKHIVE_OK);
    std::ifstream in(file);
    CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "DONE WELL");

    const std::string bad = (out_dir.path() / "no" / "such" / "dir").string();
    const taskhive_kv bad_params[] = {{"path", bad.c_str()}, {"text", "x"}};
    CHECK(write.run(bad_params, 2, &error) == TASKHIVE_ERR_FAILED);
    CHECK(std::string(error.message) == "cannot open " + bad + " for writing");
  }
}

TEST_CASE("the corpus's good plugin reports a failing item", "[plugins][abi]") {
  taskhive::test::TempDir dir;
  auto registry = load(dir, fs::path(TASKHIVE_CORPUS_DIR) / "good.so");
  const auto* descriptor = registry.descriptor("corpus_good");
  REQUIRE(descriptor != nullptr);
  const auto& echo = kind_named(*descriptor, "echo");
  void* instance = nullptr;
  taskhive_error error{};
  REQUIRE(echo.create(nullptr, 0, &instance, &error) == TASKHIVE_OK);
  const std::string text = "fail";
  const taskhive_item item{reinterpret_cast<const uint8_t*>(text.data()), text.size(), nullptr, 0};
  Collector out;
  CHECK(echo.process(instance, &item, &Collector::emit, &out, &error) == TASKHIVE_ERR_FAILED);
  CHECK(std::string(error.message) == "echo was told to fail");
  CHECK(out.items.empty());
  echo.destroy(instance);
}
