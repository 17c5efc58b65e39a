#include <sys/xattr.h>
#include "pgq_spawn.h"

/* Whether `path` carries a POSIX access ACL (Swift does not see <sys/xattr.h>). */
int pgq_has_access_acl(const char *path) {
    return getxattr(path, "system.posix_acl_access", 0, 0) > 0;
}
