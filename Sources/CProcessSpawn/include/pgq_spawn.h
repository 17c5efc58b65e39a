#ifndef PGQ_SPAWN_H
#define PGQ_SPAWN_H

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

#endif
