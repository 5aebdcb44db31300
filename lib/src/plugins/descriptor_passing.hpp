#pragma once
// Passing an open file descriptor over a Unix stream socket (SCM_RIGHTS), one per message with a one-byte
// payload: how the loader hands a checked plugin file to the probe child (probe.cpp, probe_main.cpp), so the
// child maps the very file the host checked and never opens a path itself.

namespace taskhive::detail {

/// Sends `fd` over `socket`; false if the peer is gone (no SIGPIPE).
bool send_descriptor(int socket, int fd);

/// Receives one descriptor (close-on-exec) from `socket`; -1 when the peer closed it or sent something else.
int receive_descriptor(int socket);

}  // namespace taskhive::detail
