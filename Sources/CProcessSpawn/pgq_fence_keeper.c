#define _GNU_SOURCE
#include "pgq_spawn.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

int64_t pgq_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* Signals the postmaster through its pidfd when there is one, so a recycled PID is never hit. */
static void stop_postmaster(int pidfd, pid_t postmaster) {
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, SIGQUIT, NULL, 0) == 0) return;
#endif
    if (pidfd < 0) kill(postmaster, SIGQUIT);
}

/* The keeper's loop. Messages are 8-byte native-endian int64: > 0 a deadline on CLOCK_MONOTONIC
   (writable until then), 0 disarmed (a standby), -1 stop keeping (the agent reaps the
   postmaster). End of file means the agent died: stop the postmaster at once. */
static void keep(int input, pid_t postmaster) {
    int pidfd = -1;
#ifdef SYS_pidfd_open
    pidfd = (int)syscall(SYS_pidfd_open, postmaster, 0);
#endif
    int64_t deadline = 0;
    unsigned char buffer[8];
    size_t filled = 0;
    for (;;) {
        int timeout = -1;
        if (deadline > 0) {
            int64_t left = deadline - pgq_monotonic_ns();
            if (left <= 0) {
                stop_postmaster(pidfd, postmaster);
                deadline = 0;
                continue;
            }
            timeout = (int)((left + 999999) / 1000000);
        }
        struct pollfd fds[2] = {{.fd = input, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
        int ready = poll(fds, pidfd >= 0 ? 2 : 1, timeout);
        if (ready < 0) {
            if (errno == EINTR) continue;
            stop_postmaster(pidfd, postmaster);
            _exit(1);
        }
        if (pidfd >= 0 && (fds[1].revents & POLLIN)) _exit(0); /* the postmaster is gone */
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t count = read(input, buffer + filled, sizeof buffer - filled);
            if (count < 0 && errno == EINTR) continue;
            if (count <= 0) {
                stop_postmaster(pidfd, postmaster);
                _exit(0);
            }
            filled += (size_t)count;
            if (filled < sizeof buffer) continue;
            filled = 0;
            int64_t message;
            memcpy(&message, buffer, sizeof message);
            if (message < 0) _exit(0);
            deadline = message;
        }
    }
}

pid_t pgq_spawn_fence_keeper(pid_t postmaster, int input_fd) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* Child: keep only the pipe (not the agent's lock, sockets or files). */
    if (input_fd != 3) {
        if (dup2(input_fd, 3) < 0) _exit(126);
    }
    if (syscall(SYS_close_range, 4U, ~0U, 0) != 0) {
        for (int fd = 4; fd < 65536; fd++) close(fd);
    }
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 3) close(null);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    /* A terminal's ^C or the agent's SIGTERM must not take the keeper down on its own. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    keep(3, postmaster);
    _exit(0);
}
