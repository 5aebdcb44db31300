// corpus_good: a well-formed plugin built with the author helper, which must load next to the bad ones.
#include <taskhive/plugin.hpp>

namespace {

// Passes items through, and fails an item whose bytes are "fail" to show errors crossing the boundary.
struct Echo {
  explicit Echo(const taskhive::plugin::Params&) {}
  void process(const taskhive::plugin::Item& in, taskhive::plugin::Emitter& emit) {
    if (in.text() == "fail") throw std::runtime_error("echo was told to fail");
    emit(in.text(), in.metadata());
  }
};

}  // namespace

TASKHIVE_PLUGIN("corpus_good", "2.1.0-rc.1+build.5", "the corpus's good plugin",
                taskhive::plugin::transform<Echo>("echo", "passes items through"));
