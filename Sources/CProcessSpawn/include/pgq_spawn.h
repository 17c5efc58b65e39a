#ifndef PGQ_SPAWN_H
#define PGQ_SPAWN_H

#include <stdint.h>
#include <sys/types.h>

/// Starts `path` with `argv` (NULL-terminated) as a child of this process and returns its PID,
/// or -1 with errno set. In the child, before exec: standard input, output and error become
/// `stdin_fd`, `stdout_fd`, `stderr_fd` (-1 leaves one as it is); every other descriptor is
/// closed, so no grandchild (a postmaster started by pg_ctl) keeps this process's files or
/// sockets open; when `gid` / `uid` are not -1 the child switches to them (and drops
/// supplementary groups) — PostgreSQL refuses to run as root; when `death_signal` is not 0 the
/// child gets that signal when the thread that spawned it ends (prctl PR_SET_PDEATHSIG, set
/// after the identity change, which would clear it).
/// Swift cannot call fork or the variadic prctl itself: hence this small C helper.
pid_t pgq_spawn(const char *path, char *const argv[], int stdin_fd, int stdout_fd, int stderr_fd,
                int uid, int gid, int death_signal);

/// Forks a fence keeper for `postmaster`: a small process (no exec; it keeps only `input_fd`,
/// one end of a socket pair from the agent) that ends the postmaster's writes when a writable
/// deadline passes without renewal, and stops it at once when the agent goes away (end of file).
/// It outlives a frozen (SIGSTOP) or killed agent, which is the point. With `freeze_limit_ns` > 0
/// a passed deadline freezes the postmaster's process tree (SIGSTOP), a new deadline continues
/// it, and it is killed when none comes within the limit; with 0 it gets SIGQUIT (PostgreSQL's
/// immediate shutdown) at once. Messages: 8-byte int64, > 0 a deadline in `pgq_boottime_ns`
/// time, 0 disarmed, -1 exit, -2 stop the postmaster now. Returns the keeper's PID, or -1 with
/// errno set.
pid_t pgq_spawn_fence_keeper(pid_t postmaster, int input_fd, int64_t freeze_limit_ns);

/// The state letter of `pid` in /proc/PID/stat (`T` stopped, `Z` zombie, …), or 0 when there
/// is no such process.
char pgq_process_state(pid_t pid);

/// SIGKILL to every descendant of `root` (found through /proc by parent PID, children before
/// the root, whose death would reparent them), then to `root`: the end of a frozen server
/// whose keeper is gone.
void pgq_kill_tree(pid_t root);

/// CLOCK_BOOTTIME in nanoseconds: the keeper's clock, and the one Swift's `ContinuousClock`
/// reads on Linux (it keeps counting while the machine is suspended).
int64_t pgq_boottime_ns(void);

/// Whether `path` carries a POSIX access ACL: 1 yes, 0 no (or unknown).
int pgq_has_access_acl(const char *path);

#endif
