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

int64_t pgq_boottime_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_BOOTTIME, &now);
    return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* Signals the postmaster through its pidfd, so a recycled PID is never hit; with plain kill
   when there is no pidfd or the call fails for another reason than the process being gone (the
   postmaster is the agent's child: its PID is not reused before the agent reaps it). */
static void signal_postmaster(int pidfd, pid_t postmaster, int sig) {
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0) {
        if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0 || errno == ESRCH) return;
    }
#endif
    kill(postmaster, sig);
}

/* Processes signalled as part of one tree, its root excluded. */
#define MAX_TREE 8192
struct process_set {
    pid_t pids[MAX_TREE];
    int count;
};

static int contains(const struct process_set *set, pid_t pid) {
    for (int i = 0; i < set->count; i++) if (set->pids[i] == pid) return 1;
    return 0;
}

/* The processes of a frozen tree, postmaster excluded. Stopped processes cannot exit, so their
   PIDs stay theirs until they are continued or killed. */
static struct process_set frozen;
static int is_frozen = 0;

/* The keeper is forked from the multi-threaded agent without exec: it keeps to calls that are
   safe there (no malloc, no stdio, no locale): raw open/read, getdents64, its own number
   parsing and formatting. */

/* A decimal number at `text` (stops at the first non-digit); -1 when there is none. */
static long parse_number(const char *text) {
    long value = -1;
    for (; *text >= '0' && *text <= '9'; text++) value = (value < 0 ? 0 : value * 10) + (*text - '0');
    return value;
}

/* "/proc/PID/stat" into `path` (at least 32 bytes). */
static void stat_path(pid_t pid, char *path) {
    char digits[16];
    int count = 0;
    unsigned long value = (unsigned long)pid;
    do { digits[count++] = (char)('0' + value % 10); value /= 10; } while (value > 0 && count < 15);
    memcpy(path, "/proc/", 6);
    int at = 6;
    while (count > 0) path[at++] = digits[--count];
    memcpy(path + at, "/stat", 6);
}

/* The parent of `pid` from /proc/PID/stat (the field after the state, which follows the
   command name in parentheses), or -1. */
static pid_t parent_of(pid_t pid, char *state) {
    char path[32], buffer[512];
    stat_path(pid, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t count = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (count <= 0) return -1;
    buffer[count] = 0;
    char *close_paren = NULL;
    for (char *at = buffer; *at; at++) if (*at == ')') close_paren = at;
    if (!close_paren || close_paren[1] == 0 || close_paren[2] == 0 || close_paren[3] == 0) return -1;
    if (state) *state = close_paren[2];
    return (pid_t)parse_number(close_paren + 4);
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Sends `sig` to every descendant of `root` not in `done` yet, adding it there; returns how
   many it signalled. One pass over /proc: a process is a descendant when its parent is `root`
   or already in `done` (passes repeat until one finds nothing new). */
static int signal_descendants(pid_t root, int sig, struct process_set *done) {
    int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0) return 0;
    int signalled = 0;
    char buffer[8192];
    for (;;) {
        long count = syscall(SYS_getdents64, proc, buffer, sizeof buffer);
        if (count <= 0) break;
        for (long offset = 0; offset < count;) {
            struct linux_dirent64 *entry = (struct linux_dirent64 *)(buffer + offset);
            offset += entry->d_reclen;
            long value = parse_number(entry->d_name);
            if (value <= 0) continue;
            pid_t pid = (pid_t)value;
            if (pid == root || contains(done, pid)) continue;
            pid_t parent = parent_of(pid, NULL);
            if (parent <= 0 || (parent != root && !contains(done, parent))) continue;
            if (done->count >= MAX_TREE) break;
            if (kill(pid, sig) == 0) {
                done->pids[done->count++] = pid;
                signalled++;
            }
        }
    }
    close(proc);
    return signalled;
}

char pgq_process_state(pid_t pid) {
    char state = 0;
    return parent_of(pid, &state) < 0 ? 0 : state;
}

void pgq_kill_tree(pid_t root) {
    static struct process_set killed;   /* 32 KiB: not on a caller's stack */
    killed.count = 0;
    for (int pass = 0; pass < 8; pass++) {
        if (signal_descendants(root, SIGKILL, &killed) == 0) break;
    }
    kill(root, SIGKILL);
}

/* Freezes the postmaster's whole tree: the backends first (they are what acknowledges a commit
   to a client), then the postmaster (no more forks once it is stopped), then whatever it forked
   meanwhile. A frozen server writes nothing and answers nobody, and is continued as if nothing
   happened when the lease is regained: a blip costs a stall, not a restart. */
static void freeze_tree(int pidfd, pid_t postmaster) {
    frozen.count = 0;
    is_frozen = 1;
    signal_descendants(postmaster, SIGSTOP, &frozen);
    signal_postmaster(pidfd, postmaster, SIGSTOP);
    /* SIGSTOP takes effect when the process next runs; wait (bounded) until it has, so that a
       fork in progress has produced its child before the last passes look for it. */
    for (int i = 0; i < 200; i++) {
        char state = 0;
        if (parent_of(postmaster, &state) < 0 || state == 'T' || state == 'Z') break;
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 50000};
        nanosleep(&pause, NULL);
    }
    for (int pass = 0; pass < 8; pass++) {
        if (signal_descendants(postmaster, SIGSTOP, &frozen) == 0) break;
    }
}

static void thaw_tree(int pidfd, pid_t postmaster) {
    signal_postmaster(pidfd, postmaster, SIGCONT);
    for (int i = 0; i < frozen.count; i++) kill(frozen.pids[i], SIGCONT);
    frozen.count = 0;
    is_frozen = 0;
}

/* Stops the server for good. A frozen tree is killed as it stands (SIGKILL acts on stopped
   processes; continuing them first could let a backend acknowledge a commit after the lease);
   PostgreSQL then starts with crash recovery, as after an immediate shutdown. A running one
   gets SIGQUIT, PostgreSQL's immediate shutdown. */
static void stop_postmaster(int pidfd, pid_t postmaster) {
    if (is_frozen) {
        signal_postmaster(pidfd, postmaster, SIGKILL);
        for (int i = 0; i < frozen.count; i++) kill(frozen.pids[i], SIGKILL);
        frozen.count = 0;
        is_frozen = 0;
        return;
    }
    signal_postmaster(pidfd, postmaster, SIGQUIT);
}

/* The keeper's loop. Messages are 8-byte native-endian int64: > 0 a deadline on CLOCK_BOOTTIME
   (writable until then; continues a frozen tree), 0 disarmed (a standby), -1 stop keeping (the
   agent stops the postmaster itself), -2 stop the postmaster now (another node may be promoted).
   When a deadline passes the tree is frozen if `freeze_limit_ns` > 0 and killed if no new
   deadline comes within that limit; with 0 it is stopped at once. End of file means the agent
   died: stop the postmaster at once. */
static void keep(int input, pid_t postmaster, int64_t freeze_limit_ns) {
    int pidfd = -1;
#ifdef SYS_pidfd_open
    pidfd = (int)syscall(SYS_pidfd_open, postmaster, 0);
#endif
    int64_t deadline = 0, kill_at = 0;
    unsigned char buffer[8];
    size_t filled = 0;
    for (;;) {
        int64_t now = pgq_boottime_ns();
        if (deadline > 0 && deadline <= now) {
            deadline = 0;
            if (is_frozen) continue;   /* a revoke while frozen: the kill timer already runs */
            if (freeze_limit_ns > 0) {
                freeze_tree(pidfd, postmaster);
                kill_at = now + freeze_limit_ns;
            } else {
                stop_postmaster(pidfd, postmaster);
            }
            continue;
        }
        if (kill_at > 0 && kill_at <= now) {
            kill_at = 0;
            stop_postmaster(pidfd, postmaster);
            continue;
        }
        int64_t next = deadline > 0 ? deadline : 0;
        if (kill_at > 0 && (next == 0 || kill_at < next)) next = kill_at;
        int timeout = next > 0 ? (int)((next - now + 999999) / 1000000) : -1;
        struct pollfd fds[2] = {{.fd = input, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
        int ready = poll(fds, pidfd >= 0 ? 2 : 1, timeout);
        if (ready < 0) {
            if (errno == EINTR) continue;
            stop_postmaster(pidfd, postmaster);
            _exit(1);
        }
        if (pidfd >= 0 && (fds[1].revents & POLLIN)) {
            /* The postmaster is gone; what it left frozen must not stay so. */
            if (is_frozen) stop_postmaster(pidfd, postmaster);
            _exit(0);
        }
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
            if (message == -1) {
                if (is_frozen) stop_postmaster(pidfd, postmaster);
                _exit(0);
            }
            if (message == -2) {
                stop_postmaster(pidfd, postmaster);
                deadline = 0;
                kill_at = 0;
                continue;
            }
            if (message == 0 && is_frozen) {
                /* Disarmed while frozen: never continue a server nobody allows to write. */
                stop_postmaster(pidfd, postmaster);
                kill_at = 0;
            }
            if (message > 0 && is_frozen && message > pgq_boottime_ns()) {
                thaw_tree(pidfd, postmaster);
                kill_at = 0;
            }
            deadline = message;
        }
    }
}

pid_t pgq_spawn_fence_keeper(pid_t postmaster, int input_fd, int64_t freeze_limit_ns) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* Child: keep only the line from the agent (not the agent's lock, sockets or files). */
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
    keep(3, postmaster, freeze_limit_ns);
    _exit(0);
}
