#include "descriptor_passing.hpp"

#include <cerrno>
#include <cstring>

#include <sys/socket.h>
#include <sys/uio.h>

namespace taskhive::detail {

namespace {

// A message of one payload byte with room for one descriptor; `message` points into this object.
struct OneDescriptorMessage {
  explicit OneDescriptorMessage(char payload) : byte(payload) {
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
  }
  OneDescriptorMessage(const OneDescriptorMessage&) = delete;
  OneDescriptorMessage& operator=(const OneDescriptorMessage&) = delete;

  char byte;
  iovec data{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
};

}  // namespace

bool send_descriptor(int socket, int fd) {
  OneDescriptorMessage out('p');
  cmsghdr* header = CMSG_FIRSTHDR(&out.message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
  ssize_t n = 0;
  do n = sendmsg(socket, &out.message, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == 1;
}

int receive_descriptor(int socket) {
  OneDescriptorMessage in(0);
  ssize_t n = 0;
  do n = recvmsg(socket, &in.message, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n != 1) return -1;
  const cmsghdr* header = CMSG_FIRSTHDR(&in.message);
  if (!header || header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS ||
      header->cmsg_len != CMSG_LEN(sizeof(int)))
    return -1;
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(header), sizeof fd);
  return fd;
}

}  // namespace taskhive::detail
