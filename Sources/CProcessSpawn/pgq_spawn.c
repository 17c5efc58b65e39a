#define _GNU_SOURCE
#include "pgq_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t pgq_spawn(const char *path, char *const argv[], int stdin_fd, int stdout_fd, int stderr_fd,
                int uid, int gid, int death_signal) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) {
        return pid; /* parent (or -1 with errno) */
    }
    /* Child: only async-signal-safe calls from here to exec. */
    if (stdin_fd >= 0 && dup2(stdin_fd, 0) < 0) _exit(126);
    if (stdout_fd >= 0 && dup2(stdout_fd, 1) < 0) _exit(126);
    if (stderr_fd >= 0 && dup2(stderr_fd, 2) < 0) _exit(126);
    /* close_range(3, ~0U, 0); by number, as older headers lack the wrapper. */
    if (syscall(SYS_close_range, 3U, ~0U, 0) != 0) {
        for (int fd = 3; fd < 65536; fd++) close(fd);
    }
    if (gid >= 0) {
        if (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0) _exit(126);
    }
    if (uid >= 0 && setuid((uid_t)uid) != 0) _exit(126);
    if (death_signal != 0 && prctl(PR_SET_PDEATHSIG, death_signal) != 0) _exit(126);
    /* The parent may have died before the signal was armed: then it never comes. */
    if (death_signal != 0 && getppid() != parent) _exit(126);
    /* Restore default signal dispositions and an empty mask for the new program. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    execv(path, argv);
    _exit(127);
}
