#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum SystemError {
    static func message(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text) + " (errno \(code))"
    }
}

/// Thin, explicit wrappers over the POSIX calls storage needs. Every failure becomes a
/// `StorageError.io` that names the call and the path.
enum FileIO {
    static func fail(_ operation: String, _ path: String) -> StorageError {
        .io(operation: operation, path: path, errno: errno)
    }

    static func makeDirectory(_ path: String) throws(StorageError) {
        var parts: [String] = []
        var current = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            current += "/" + component
            parts.append(current)
        }
        if !path.hasPrefix("/") { parts = parts.map { String($0.dropFirst()) } }
        for part in parts {
            if mkdir(part, 0o700) == 0 {
                // The new directory's name lives in its parent: make it durable there too.
                let parent = part.split(separator: "/").dropLast().joined(separator: "/")
                try syncDirectory(part.hasPrefix("/") ? "/" + parent : (parent.isEmpty ? "." : parent))
            } else if errno != EEXIST {
                throw fail("mkdir", part)
            }
        }
    }

    /// Names in a directory, without "." and "..".
    static func list(_ path: String) throws(StorageError) -> [String] {
        guard let directory = opendir(path) else { throw fail("opendir", path) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func readAll(_ path: String) throws(StorageError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("open", path) }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw fail("read", path)
            }
            if count == 0 { return result }
            result.append(contentsOf: buffer[0..<count])
        }
    }

    static func openForAppend(_ path: String, create: Bool) throws(StorageError) -> Int32 {
        let flags = O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0)
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else { throw fail("open", path) }
        return fd
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(StorageError) {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return write(fd, base + written, buffer.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw fail("write", path)
            }
            written += count
        }
    }

    static func syncData(_ fd: Int32, path: String) throws(StorageError) {
        guard fdatasync(fd) == 0 else { throw fail("fdatasync", path) }
    }

    static func syncFile(_ fd: Int32, path: String) throws(StorageError) {
        guard fsync(fd) == 0 else { throw fail("fsync", path) }
    }

    /// Makes a directory's entries (created, renamed, removed files) durable.
    static func syncDirectory(_ path: String) throws(StorageError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("open", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw fail("fsync", path) }
    }

    /// Writes a whole file atomically: temporary file, sync, rename, sync of the directory.
    static func writeAtomically(_ bytes: [UInt8], to path: String, directory: String) throws(StorageError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fail("open", temporary) }
        do {
            try writeAll(fd, bytes, path: temporary)
            try syncFile(fd, path: temporary)
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw fail("rename", temporary) }
        try syncDirectory(directory)
    }

    static func truncate(_ path: String, to length: Int) throws(StorageError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("open", path) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0 else { throw fail("ftruncate", path) }
        try syncFile(fd, path: path)
    }

    static func remove(_ path: String) throws(StorageError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw fail("unlink", path) }
    }
}
