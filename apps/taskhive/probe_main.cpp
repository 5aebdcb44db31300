// taskhive-probe: loads plugins in a throw-away child process on behalf of the host (issue 4, "probe before
// load"), so a plugin whose constructors or entry function crash, exit or hang takes down this process, not
// the host. Started by the loader (lib/src/plugins/probe.cpp); not meant to be run by hand.
//
//   taskhive-probe --protocol 2        (stdin: a Unix stream socket to the host)
//
// The host sends each plugin file it opened and checked as a descriptor (SCM_RIGHTS, one byte of payload), so
// the child loads exactly the bytes the host checked, through /proc/self/fd/N. For each one we answer with
// one JSON line on the same socket, written at once so that the host knows which plugin was being probed when
// we died (the one without an answer):
//
//   {"taskhive_probe":2}                                   once, at start (protocol version)
//   {"fd":5,"ok":true,"name":...,"version":...,"description":...,"kinds":[...]}
//   {"fd":6,"ok":false,"reason":"...","name":"..."}        ("fd": our number for it, named in dlerror texts)
//
// We exit when the host closes the socket. The descriptor is validated by detail::read_descriptor, the very
// code the in-process loader runs.

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
#include "plugins/descriptor_passing.hpp"
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
  if (argc != 3 || std::string_view(argv[1]) != "--protocol" || std::string_view(argv[2]) != "2") {
    std::fprintf(stderr, "usage: taskhive-probe --protocol 2  (started by the taskhive plugin loader)\n");
    return 2;
  }
  // Keep the conversation to ourselves: a plugin that reads stdin or prints must not touch the socket.
  const int host = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
  const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (host < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0) return 2;
  if (!write_line(host, R"({"taskhive_probe":2})")) return 2;
  // Descriptors are never closed: a library stays loaded under its /proc/self/fd/N name, and a reused N
  // would make dlopen return that library for the next plugin. The host starts a new child every 256.
  for (int fd; (fd = taskhive::detail::receive_descriptor(host)) >= 0;) {
    // dump() with replace: a plugin's strings need not be UTF-8.
    if (!write_line(host, probe(fd).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))) break;
  }
  _exit(0);  // no static destructors, no plugin destructors: all results are out
}
