import CProcessSpawn
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to completion through `pgq_spawn`: no inherited descriptors beyond standard
/// input (/dev/null), output and error (an unlinked temp file), optionally as another user.
/// Foundation's `Process` is not used here: a postmaster that `pg_ctl start` leaves behind would
/// inherit the descriptor Foundation watches to notice the exit, and the wait would never end.
enum ChildProcess {
    static func run(_ path: String, _ arguments: [String], user: OSUser?) throws(PostgresError) -> (status: Int32, output: String) {
        var template = Array("/tmp/pgquorum-output-XXXXXX".utf8CString)
        let output = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard output >= 0 else { throw PostgresError("cannot create a temp file: \(String(cString: strerror(errno)))") }
        _ = fcntl(output, F_SETFD, FD_CLOEXEC)
        defer { close(output) }
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw PostgresError("cannot open /dev/null: \(String(cString: strerror(errno)))") }
        defer { close(input) }

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let pid = argv.withUnsafeBufferPointer { buffer in
            pgq_spawn(path, buffer.baseAddress, input, output, output,
                      user.map { Int32(bitPattern: $0.uid) } ?? -1, user.map { Int32(bitPattern: $0.gid) } ?? -1, 0)
        }
        guard pid > 0 else { throw PostgresError("cannot start \(path): \(String(cString: strerror(errno)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw PostgresError("waiting for \(path) failed: \(String(cString: strerror(errno)))") }
        }
        let exitCode: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)

        lseek(output, 0, SEEK_SET)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return (exitCode, String(decoding: bytes, as: UTF8.self))
    }
}
