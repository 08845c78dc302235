/* burrow native addon: small syscalls Node does not expose.
 * dup(fd) -> new descriptor (F_DUPFD_CLOEXEC) so a worker thread can own a socket the acceptor thread accepted
 * (DESIGN.md §1 "Handoff mechanism"); called once per handed-off connection.
 * setQuickAck(fd) -> re-arm TCP_QUICKACK (Linux); called per read on agent connections (see src/relay), so it never
 * throws: it returns false when the option cannot be set.
 * peerGone(fd) -> whether a socket that nobody reads was reset by its peer (poll with a zero timeout), for public
 * sockets paused by backpressure: libuv does not watch a socket whose reading is stopped, so its RST goes unseen. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <node_api.h>

/* Throw an Error whose code is the errno name (EBADF, EMFILE...) and whose message says what failed. */
static void throw_errno(napi_env env, const char *what, int err) {
  const char *name;
  switch (err) {
    case EBADF: name = "EBADF"; break;
    case EMFILE: name = "EMFILE"; break;
    case ENFILE: name = "ENFILE"; break;
    case EINVAL: name = "EINVAL"; break;
    case EINTR: name = "EINTR"; break;
    default: name = "EUNKNOWN"; break;
  }
  char msg[256];
  snprintf(msg, sizeof msg, "%s failed: %s (%s)", what, strerror(err), name);
  napi_throw_error(env, name, msg);
}

static napi_value Dup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "dup(fd): fd is required (a non-negative integer)");
    return NULL;
  }
  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  if (t != napi_number) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "dup(fd): fd must be a non-negative integer");
    return NULL;
  }
  int32_t fd;
  napi_get_value_int32(env, argv[0], &fd);
  if (fd < 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "dup(fd): fd must be a non-negative integer");
    return NULL;
  }
  int nfd;
  do {
    nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  } while (nfd < 0 && errno == EINTR);
  if (nfd < 0) {
    throw_errno(env, "fcntl(F_DUPFD_CLOEXEC)", errno);
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, nfd, &out);
  return out;
}

/* close(fd): used only to release a duplicate that could not be handed over (worker gone). */
static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "close(fd): fd must be a non-negative integer");
    return NULL;
  }
  if (close(fd) != 0 && errno != EINTR) {
    throw_errno(env, "close", errno);
    return NULL;
  }
  return NULL;
}

/* The first argument as a descriptor, for the calls that never throw: false when it is missing or not a number >= 0. */
static bool fd_arg(napi_env env, napi_callback_info info, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  *fd = -1;
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1 &&
         napi_get_value_int32(env, argv[0], fd) == napi_ok && *fd >= 0;
}

static napi_value boolean(napi_env env, bool value) {
  napi_value result;
  napi_get_boolean(env, value, &result);
  return result;
}

/* TCP_QUICKACK is not sticky: the kernel falls back to delayed ACKs after a while, so callers re-arm it after
 * each read. Peers that do not set TCP_NODELAY (the ngrok SDK) otherwise wait ~40 ms for our delayed ACK before
 * sending a small segment that follows another one. */
static napi_value SetQuickAck(napi_env env, napi_callback_info info) {
  bool ok = false;
  int32_t fd;
  if (fd_arg(env, info, &fd)) {
#ifdef TCP_QUICKACK
    int one = 1;
    ok = setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one) == 0;
#endif
  }
  return boolean(env, ok);
}

/* poll(2) reports POLLERR once the socket has a pending error (ECONNRESET after an RST; nobody reads it while the
 * socket is paused). Not "gone": a FIN (POLLRDHUP, a half-close after which the peer may still read), both sides'
 * FINs (POLLHUP: bytes may still wait to be forwarded), unread data. Reads nothing. Never throws: false when the
 * descriptor cannot be polled. */
static napi_value PeerGone(napi_env env, napi_callback_info info) {
  bool gone = false;
  int32_t fd;
  if (fd_arg(env, info, &fd)) {
    struct pollfd p = {.fd = fd, .events = 0, .revents = 0};
    int n;
    do {
      n = poll(&p, 1, 0);
    } while (n < 0 && errno == EINTR);
    gone = n == 1 && (p.revents & POLLERR) != 0;
  }
  return boolean(env, gone);
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"peerGone", NULL, PeerGone, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setQuickAck", NULL, SetQuickAck, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dup", NULL, Dup, NULL, NULL, NULL, napi_enumerable, NULL},
    {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
