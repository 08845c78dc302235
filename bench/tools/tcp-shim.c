// Experiment tool for `npm run bench -- relay` (not part of burrow, never loaded by it): an LD_PRELOAD library that
// changes TCP options of one process of the bench, to measure what a fix would give before anyone writes it.
// Linux/glibc only. Not on any product path.
//
//   SHIM_MATCH=<text>  act only in processes whose command line contains <text> (e.g. agent-process.js, burrow.js);
//                      every other process that inherits LD_PRELOAD is left alone
//   SHIM_MODE=nodelay  set TCP_NODELAY on every TCP socket before connect() — "the ngrok SDK set TCP_NODELAY"
//   SHIM_MODE=quickack after every successful read on a TCP socket, set TCP_QUICKACK — "the relay defeats delayed
//                      ACKs on its sockets". Linux clears quick-ACK mode again on its own, so it is re-armed per read.
//
// Build and use (see bench/README.md, "Experiments"):
//   gcc -O2 -shared -fPIC -o /tmp/tcp-shim.so bench/tools/tcp-shim.c -ldl
//   SHIM_MATCH=burrow.js SHIM_MODE=quickack LD_PRELOAD=/tmp/tcp-shim.so node dist/bench/run.js relay
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { MODE_OFF = 0, MODE_NODELAY = 1, MODE_QUICKACK = 2 };

static int mode = MODE_OFF;

__attribute__((constructor)) static void shim_init(void) {
  const char *match = getenv("SHIM_MATCH");
  const char *m = getenv("SHIM_MODE");
  if (match == NULL || m == NULL) return;
  char cmd[4096];
  int fd = open("/proc/self/cmdline", O_RDONLY);
  if (fd < 0) return;
  ssize_t n = read(fd, cmd, sizeof cmd - 1);
  close(fd);
  if (n <= 0) return;
  for (ssize_t i = 0; i < n; i++) if (cmd[i] == '\0') cmd[i] = ' '; // arguments are NUL-separated
  cmd[n] = '\0';
  if (strstr(cmd, match) == NULL) return;
  mode = strcmp(m, "nodelay") == 0 ? MODE_NODELAY : strcmp(m, "quickack") == 0 ? MODE_QUICKACK : MODE_OFF;
}

// No bookkeeping of which fds are TCP sockets: fds get closed and reused behind any wrapper (dup, close_range, ...),
// so after every successful read the option is simply set; on anything but a TCP socket setsockopt fails (ENOTSOCK,
// EOPNOTSUPP) at the cost of one cheap syscall.
static void after_read(int fd, ssize_t r) {
  if (mode != MODE_QUICKACK || r <= 0) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

// The libc function this one wraps, looked up once (the type comes from the libc declaration).
#define REAL(name) \
  static __typeof__(&name) real_##name; \
  if (real_##name == NULL) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  REAL(connect);
  if (mode == MODE_NODELAY && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); // fails harmlessly on a UDP socket
  }
  return real_connect(fd, addr, len);
}

ssize_t read(int fd, void *buf, size_t n) {
  REAL(read);
  ssize_t r = real_read(fd, buf, n);
  after_read(fd, r);
  return r;
}

ssize_t readv(int fd, const struct iovec *iov, int cnt) {
  REAL(readv);
  ssize_t r = real_readv(fd, iov, cnt);
  after_read(fd, r);
  return r;
}

ssize_t recv(int fd, void *buf, size_t n, int flags) {
  REAL(recv);
  ssize_t r = real_recv(fd, buf, n, flags);
  after_read(fd, r);
  return r;
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *len) {
  REAL(recvfrom);
  ssize_t r = real_recvfrom(fd, buf, n, flags, addr, len);
  after_read(fd, r);
  return r;
}
