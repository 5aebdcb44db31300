// corpus "versioned": one plugin built twice (VERSIONED_TAG "v1" / "v2"), for the hot-reload tests: its
// transform "tag" prefixes each item with the version that ran it.
#include <string>

#include <taskhive/plugin.hpp>

namespace {

struct Tag {
  explicit Tag(const taskhive::plugin::Params&) {}
  void process(const taskhive::plugin::Item& in, taskhive::plugin::Emitter& emit) {
    emit(std::string(VERSIONED_TAG) + ":" + std::string(in.text()), in.metadata());
  }
};

}  // namespace

TASKHIVE_PLUGIN("versioned", VERSIONED_VERSION, "a plugin built in two versions",
                taskhive::plugin::transform<Tag>("tag", "prefixes items with the plugin's version"));
