// taskhive-probe: loads plugins in a throw-away child process on behalf of the host (issue 4, "probe before
// load"), so a plugin whose constructors or entry function crash, exit or hang takes down this process, not
// the host. Started by the loader (lib/src/plugins/probe.cpp); not meant to be run by hand.
//
//   taskhive-probe --protocol 1 FD...
//
// Each FD is a plugin file the host opened and checked, inherited across exec, so the child loads exactly
// the bytes the host checked (through /proc/self/fd/FD, the same name the host would use). Output, on the
// stdout the host gave us, one JSON object per line, flushed at once so that the host knows which plugin was
// being probed when we died (the first one without a line):
//
//   {"taskhive_probe":1}                                   once, at start (protocol version)
//   {"fd":5,"ok":true,"name":...,"version":...,"description":...,"kinds":[...]}
//   {"fd":6,"ok":false,"reason":"...","name":"..."}
//
// The descriptor is validated by detail::read_descriptor, the very code the in-process loader runs.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "plugins/descriptor_check.hpp"
#include "plugins/kind_json.hpp"

// Under AddressSanitizer, let a plugin's SIGSEGV, SIGBUS and SIGFPE kill us with that signal (ASan would
// otherwise catch it and exit with status 1, so the host would report "exited" instead of "crashed"), and
// skip the leak check at exit, which would turn a plugin's exit(3) into ASan's own exit status. A plain build
// never calls this.
extern "C" const char* __asan_default_options() {  // NOLINT: the name is ASan's
  return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0:detect_leaks=0";
}

namespace {

// Writes all of `line` and a newline to `fd`; false if the host went away.
bool write_line(int fd, std::string line) {
  line += '\n';
  std::string_view rest = line;
  while (!rest.empty()) {
    const ssize_t n = write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

nlohmann::json probe(int fd) {
  taskhive::PluginRecord record;
  nlohmann::json out{{"fd", fd}};
  const std::string proc_name = fmt::format("/proc/self/fd/{}", fd);
  dlerror();
  // RTLD_LOCAL: plugins probed in one process must not resolve symbols against each other. Never dlclose'd:
  // we _exit when done, and a plugin's destructors are none of the probe's business.
  void* handle = dlopen(proc_name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* error = dlerror();
    out["ok"] = false;
    out["reason"] = fmt::format("dlopen failed: {}", error ? error : "unknown error");  // host names the path
    return out;
  }
  if (!taskhive::detail::read_descriptor(handle, record)) {
    out["ok"] = false;
    out["reason"] = record.reason;
    out["name"] = record.name;
    return out;
  }
  out["ok"] = true;
  out["name"] = record.name;
  out["version"] = record.version;
  out["description"] = record.description;
  out["kinds"] = taskhive::detail::kinds_to_json(record.kinds);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || std::string_view(argv[1]) != "--protocol" || std::string_view(argv[2]) != "1") {
    std::fprintf(stderr,
                 "usage: taskhive-probe --protocol 1 FD...  (started by the taskhive plugin loader)\n");
    return 2;
  }
  // Keep the protocol stream to ourselves: a plugin that prints to stdout must not corrupt it.
  const int out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  const int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (out < 0 || null < 0 || dup2(null, STDOUT_FILENO) < 0) return 2;
  if (!write_line(out, R"({"taskhive_probe":1})")) return 2;
  for (int i = 3; i < argc; ++i) {
    char* end = nullptr;
    const long fd = std::strtol(argv[i], &end, 10);
    if (*end != '\0' || fd < 3 || fd > 1'000'000) return 2;
    // dump() with replace: a plugin's strings need not be UTF-8.
    if (!write_line(
            out, probe(static_cast<int>(fd)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)))
      return 2;
  }
  _exit(0);  // no static destructors, no plugin destructors: all results are out
}
