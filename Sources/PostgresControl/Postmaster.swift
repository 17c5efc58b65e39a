import CProcessSpawn
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A postmaster the agent started itself (not through `pg_ctl`), so that it is the agent's child:
/// it gets SIGQUIT (immediate shutdown) when the thread that started it ends — the agent process
/// dying — and a fence keeper freezes or stops it when the agent stops renewing the writable
/// deadline (frozen, or lost its lease). Blocking; one owner thread.
public final class Postmaster {
    public let pid: pid_t
    public let keeperPID: pid_t
    /// The keeper's line (a socket pair): any thread may renew the writable deadline through it.
    public let fence: FenceLine
    private var exitStatus: Int32?
    private var keeperExited = false

    /// Starts `postgres -D dataDirectory` with `options` (`-c name=value` each) as `user`, output
    /// appended to `logFile`, and its fence keeper (disarmed: a standby needs no deadline). When
    /// a deadline passes, the keeper freezes the server's processes for up to `freezeLimit`
    /// (a new deadline continues them, a blip costs a stall) and then kills them; with nil it
    /// stops the server at once.
    public static func start(server: PostgresServer, options: [String: String], logFile: String,
                             freezeLimit: Duration? = nil) throws(PostgresError) -> Postmaster {
        let path = server.binDirectory + "/postgres"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw PostgresError("\(path) does not exist; install PostgreSQL 15 (apt-get install postgresql-15) or set postgresql.bin_dir")
        }
        let log = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o640)
        guard log >= 0 else { throw PostgresError("cannot open \(logFile): \(String(cString: strerror(errno)))") }
        defer { close(log) }
        if let user = server.user { _ = fchown(log, user.uid, user.gid) }
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if input >= 0 { close(input) } }
        let arguments = ["-D", server.dataDirectory] + options.sorted { $0.key < $1.key }.flatMap { ["-c", "\($0.key)=\($0.value)"] }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let pid = argv.withUnsafeBufferPointer { buffer in
            pgq_spawn(path, buffer.baseAddress, input, log, log,
                      server.user.map { Int32(bitPattern: $0.uid) } ?? -1, server.user.map { Int32(bitPattern: $0.gid) } ?? -1, SIGQUIT)
        }
        guard pid > 0 else { throw PostgresError("cannot start \(path): \(String(cString: strerror(errno)))") }

        // A socket pair, not a pipe: a write after the keeper exited (with its postmaster) must
        // fail with EPIPE (MSG_NOSIGNAL), not kill the agent with SIGPIPE.
        var ends: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            kill(pid, SIGQUIT)
            throw PostgresError("cannot create the fence keeper's socket pair: \(String(cString: strerror(errno)))")
        }
        let keeper = pgq_spawn_fence_keeper(pid, ends[0], max(0, freezeLimit?.nanoseconds ?? 0))
        close(ends[0])
        guard keeper > 0 else {
            close(ends[1])
            kill(pid, SIGQUIT)
            throw PostgresError("cannot start the fence keeper: \(String(cString: strerror(errno)))")
        }
        _ = fcntl(ends[1], F_SETFL, fcntl(ends[1], F_GETFL) | O_NONBLOCK)
        return Postmaster(pid: pid, keeperPID: keeper, fence: FenceLine(descriptor: ends[1]))
    }

    private init(pid: pid_t, keeperPID: pid_t, fence: FenceLine) {
        self.pid = pid
        self.keeperPID = keeperPID
        self.fence = fence
    }

    deinit {
        if exitStatus == nil { stopImmediately() }
        fence.close()
        reapKeeper()
    }

    /// Whether the postmaster still runs (reaps it when it has exited).
    public var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid || (result < 0 && errno == ECHILD) {
            exitStatus = status
            return false
        }
        return true
    }

    /// Whether the fence keeper still runs. Without it a frozen agent would leave PostgreSQL
    /// writable, so the owner stops PostgreSQL when it is gone.
    public var keeperIsAlive: Bool {
        if keeperExited { return false }
        var status: Int32 = 0
        let result = waitpid(keeperPID, &status, WNOHANG)
        if result == keeperPID || (result < 0 && errno == ECHILD) { keeperExited = true }
        return !keeperExited
    }

    /// Whether the keeper has frozen the server (the postmaster is stopped by a signal).
    public var isFrozen: Bool { isRunning && pgq_process_state(pid) == CChar(UInt8(ascii: "T")) }

    /// Immediate shutdown (SIGQUIT): every backend exits at once, nothing more is written. A
    /// frozen server cannot act on a signal: the keeper kills it as it stands. Waits (bounded)
    /// for the postmaster to exit.
    @discardableResult
    public func stopImmediately(seconds: Double = 10) -> Bool {
        guard isRunning else { return true }
        // A frozen server whose keeper is gone (killed by hand while it held the freeze):
        // nobody else would ever continue or kill it, and it cannot act on SIGQUIT.
        if isFrozen, !keeperIsAlive { pgq_kill_tree(pid) }
        fence.stopNow()
        kill(pid, SIGQUIT)
        return waitForExit(seconds: seconds)
    }

    /// Fast shutdown (SIGINT): clients disconnected, a shutdown checkpoint, WAL sent to connected
    /// standbys. Waits (bounded); falls back to an immediate stop, at once for a frozen server.
    @discardableResult
    public func stopFast(seconds: Double = 30) -> Bool {
        guard isRunning else { return true }
        if isFrozen { return stopImmediately() }
        kill(pid, SIGINT)
        if waitForExit(seconds: seconds) { return true }
        return stopImmediately()
    }

    private func waitForExit(seconds: Double) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1_000))
        while isRunning {
            guard ContinuousClock.now < deadline else { return false }
            usleep(5_000)
        }
        return true
    }

    private func reapKeeper() {
        guard !keeperExited else { return }
        var status: Int32 = 0
        for _ in 0..<200 {
            let result = waitpid(keeperPID, &status, WNOHANG)
            if result == keeperPID || result < 0 { return }
            usleep(5_000)
        }
    }
}

/// The agent's end of a fence keeper's socket pair. Thread-safe: the Raft task renews the deadline on
/// every tick it holds the lease, while the PostgreSQL thread may be busy with a promotion.
public final class FenceLine: Sendable {
    private let descriptor: Mutex<Int32>

    init(descriptor: Int32) { self.descriptor = Mutex(descriptor) }

    /// PostgreSQL may accept writes for `remaining` from now (a frozen server is continued);
    /// past that, without a renewal, the keeper freezes or stops it. Never blocks.
    public func allowWrites(for remaining: Duration) {
        // A deadline already past: end writes now rather than leave the last one standing.
        send(remaining.nanoseconds > 0 ? pgq_boottime_ns() + remaining.nanoseconds : 1)
    }

    /// Stop the server now, frozen or not (another node may be promoted): the keeper kills a
    /// frozen tree and sends SIGQUIT to a running one.
    public func stopNow() { send(-2) }

    func sendDeadline(_ value: Int64) { send(value) }

    /// Stops keeping (the agent stops or reaps the postmaster itself). The keeper exits.
    func close() {
        send(-1)
        descriptor.withLock { fd in
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }

    private func send(_ value: Int64) {
        descriptor.withLock { fd in
            guard fd >= 0 else { return }
            var message = value
            _ = withUnsafeBytes(of: &message) { Glibc.send(fd, $0.baseAddress, 8, Int32(MSG_NOSIGNAL)) }
        }
    }
}

extension FenceLine {
    /// Writes must stop now: a deadline already past, so the keeper freezes PostgreSQL at once
    /// (or stops it, without a freeze limit); a later deadline may continue it.
    public func revoke() { sendDeadline(1) }
}
