// A plugin built outside the taskhive tree with the installed taskhive_add_plugin(): proves a plugin author
// needs nothing but find_package(taskhive).
#include <algorithm>
#include <cctype>
#include <string>

#include <taskhive/plugin.hpp>

namespace {

class Upper {
 public:
  explicit Upper(const taskhive::plugin::Params&) {}
  void process(const taskhive::plugin::Item& in, taskhive::plugin::Emitter& emit) {
    std::string out(in.text());
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    emit(out, in.metadata());
  }
};

}  // namespace

TASKHIVE_PLUGIN("consumer_upper", "1.0.0", "built against the installed package",
                taskhive::plugin::transform<Upper>("upper"));
