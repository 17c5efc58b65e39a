import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Files in directories that PostgreSQL's OS user owns (its data directory), read and written by
/// an agent that may run as root. That user may plant links there (a database superuser's
/// `COPY … TO PROGRAM` runs as it), so nothing here follows a link, and nothing is changed by
/// its path: a link to `/etc/sudoers` must neither be written through nor read back into a
/// file that user can read.
public enum UserOwnedFile {
    /// The largest file `read` returns: configuration and timeline history files are far smaller.
    public static let readLimit = 4 << 20

    /// The text of a regular file, or nil when it is missing, a link, not a regular file (a FIFO
    /// would block, a device never end), hard-linked elsewhere, larger than `limit`, or not UTF-8.
    public static func read(_ path: String, limit: Int = readLimit) -> String? {
        guard let bytes = bytes(path, limit: limit) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The bytes of a regular file, under the same rules as `read`.
    public static func bytes(_ path: String, limit: Int = readLimit) -> [UInt8]? {
        let file = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard file >= 0 else { return nil }
        defer { close(file) }
        var info = stat()
        // A second hard link could be a root-only file that this directory's owner linked in.
        guard fstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_nlink == 1,
              Int(info.st_size) <= limit else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeMutableBytes { Glibc.read(file, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            offset += count
        }
        return Array(bytes[..<offset])
    }

    /// Replaces `name` in `directory` with `contents` (mode 0600, owned by `owner`): created under a
    /// fresh name with `O_CREAT|O_EXCL|O_NOFOLLOW` relative to the directory's descriptor (itself
    /// opened with `O_NOFOLLOW`), given away with `fchown` on its own descriptor, synced, and
    /// renamed over `name` (a link there is replaced, not followed).
    public static func replace(_ name: String, in directory: String, with contents: String, owner: OSUser?) throws(PostgresError) {
        let folder = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard folder >= 0 else { throw PostgresError("cannot open \(directory): \(String(cString: strerror(errno)))") }
        defer { close(folder) }
        let temporary = ".\(name).pgquorum-\(UInt32.random(in: 0 ... .max))"
        let file = openat(folder, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw PostgresError("cannot create \(directory)/\(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(contents.utf8)
        var offset = 0
        var failure: Int32 = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(file, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { failure = count == 0 ? EIO : errno; break }
            offset += count
        }
        if failure == 0, let owner, fchown(file, owner.uid, owner.gid) != 0 { failure = errno }
        if failure == 0, fsync(file) != 0 { failure = errno }
        close(file)
        if failure == 0, renameat(folder, temporary, folder, name) != 0 { failure = errno }
        guard failure == 0 else {
            unlinkat(folder, temporary, 0)
            throw PostgresError("cannot write \(directory)/\(name): \(String(cString: strerror(failure)))")
        }
        // The rename itself survives a crash only once the directory is synced.
        fsync(folder)
    }

    /// The first directory on `path` (after resolving links) that someone other than root could
    /// change: owned by another user, or writable by group or others without the sticky bit
    /// (`/tmp` is fine). Nil when only root controls the whole path.
    public static func firstDirectoryOthersControl(on path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return "\(path) cannot be resolved: \(String(cString: strerror(errno)))" }
        let real = String(cString: resolved)
        free(resolved)
        var prefixes = ["/"]
        var walked = ""
        for component in real.split(separator: "/") {
            walked += "/" + component
            prefixes.append(walked)
        }
        for prefix in prefixes {
            var info = stat()
            guard lstat(prefix, &info) == 0 else { return "\(prefix) cannot be read: \(String(cString: strerror(errno)))" }
            if info.st_uid != 0 { return "\(prefix) belongs to uid \(info.st_uid), not root" }
            if info.st_mode & 0o022 != 0, info.st_mode & S_ISVTX == 0 {
                return "\(prefix) is writable by group or others (mode \(String(info.st_mode & 0o7777, radix: 8)))"
            }
        }
        return nil
    }

    /// Removes temporary files a crash left behind in `directory` (`.NAME.pgquorum-N`).
    public static func removeLeftovers(in directory: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let folder = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard folder >= 0 else { return }
        defer { close(folder) }
        for name in names where name.hasPrefix(".") && name.contains(".pgquorum-") {
            unlinkat(folder, name, 0)
        }
    }
}
