import CProcessSpawn
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An operating-system account PostgreSQL runs as. PostgreSQL refuses to run as root, so an
/// agent running as root runs every PostgreSQL program as this user.
public struct OSUser: Sendable, Equatable {
    public var name: String
    public var uid: uid_t
    public var gid: gid_t

    public init(name: String, uid: uid_t, gid: gid_t) {
        self.name = name
        self.uid = uid
        self.gid = gid
    }

    public static func named(_ name: String) -> OSUser? {
        guard let entry = getpwnam(name) else { return nil }
        return OSUser(name: name, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    /// Every group the user belongs to (its primary group and the supplementary ones).
    public var groups: Set<gid_t> {
        var count: Int32 = 64
        var list = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, gid, &list, &count) < 0 {
            list = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, gid, &list, &count) >= 0 else { return [gid] }
        }
        return Set(list.prefix(Int(count))).union([gid])
    }

    /// The first existing directory on the way to `path` (its ancestors, and `path` itself when it
    /// exists) that this user may not enter, judged from the mode bits as the kernel would
    /// (owner, then group, then others; a directory with an access ACL is not judged). A private
    /// clone (`mkdir -m 700`, a home directory) is the usual one. Nil when the user can reach `path`. Directories that do not exist yet are not
    /// judged: whoever creates them chooses their mode.
    public func firstBlockedDirectory(on path: String) -> (path: String, mode: mode_t, owner: uid_t)? {
        let groups = self.groups
        let components = URL(fileURLWithPath: path).standardizedFileURL.path.split(separator: "/")
        var directories = ["/"]
        for component in components { directories.append((directories.count == 1 ? "" : directories[directories.count - 1]) + "/" + component) }
        for current in directories {
            var info = stat()
            guard stat(current, &info) == 0 else { return nil }
            guard info.st_mode & S_IFMT == S_IFDIR else { continue }
            // An access ACL may let the user in where the mode bits do not: not judged here.
            if pgq_has_access_acl(current) != 0 { continue }
            let mode = info.st_mode & 0o7777
            let allowed: Bool
            if info.st_uid == uid {
                allowed = mode & S_IXUSR != 0
            } else if groups.contains(info.st_gid) {
                allowed = mode & S_IXGRP != 0
            } else {
                allowed = mode & S_IXOTH != 0
            }
            if !allowed { return (current, mode, info.st_uid) }
        }
        return nil
    }
}
