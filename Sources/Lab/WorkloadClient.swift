import Foundation
import PostgresControl
import Synchronization
import WorkloadCheck
#if canImport(Glibc)
import Glibc
#endif

/// The scenario's client, on a thread of its own: one INSERT of a fresh key every interval
/// through a libpq multi-host connection with `target_session_attrs=read-write`, the way an
/// application finds the primary without a proxy. Every acknowledged write is kept with the node
/// that acknowledged it, the server's clock while it ran, and the client's send and ack times.
public final class WorkloadClient: Sendable {
    public static let table = "pgq_workload"

    private let acknowledged = Mutex<[WorkloadHistory.Write]>([])
    private let failed = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    public let interval: Duration

    /// `nodes`: server address → node name (the server reports its address).
    public init(conninfo: String, nodes: [String: String], interval: Duration, firstID: Int64 = 1) {
        self.interval = interval
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            var connection: PostgresConnection?
            var nextID = firstID
            var next = ContinuousClock.now
            while !stopped.load(ordering: .relaxed) {
                if connection == nil { connection = try? PostgresConnection(conninfo) }
                if let open = connection {
                    let id = nextID
                    nextID += 1
                    let sent = Self.wallClock()
                    let sql = "INSERT INTO \(Self.table) (id) VALUES (\(id)) RETURNING host(inet_server_addr()), "
                        + "(extract(epoch FROM clock_timestamp()) * 1000)::float8"
                    if let rows = try? open.query(sql), rows.count == 1, rows[0].count == 2,
                       let address = rows[0][0], let serverText = rows[0][1], let serverAt = Double(serverText) {
                        let write = WorkloadHistory.Write(id: id, node: nodes[address] ?? address, sentAt: sent, serverAt: serverAt,
                                                          ackedAt: Self.wallClock())
                        acknowledged.withLock { $0.append(write) }
                    } else {
                        failed.add(1, ordering: .relaxed)
                        connection = nil
                    }
                } else {
                    failed.add(1, ordering: .relaxed)
                }
                next += interval
                let now = ContinuousClock.now
                if next > now { usleep(UInt32(max(0, (next - now) / .microseconds(1)))) } else { next = now }
            }
        }
    }

    /// Milliseconds since 1970: the clock every lab node shares.
    public static func wallClock() -> Double { Date().timeIntervalSince1970 * 1_000 }

    /// The conninfo of a client of every node, writes going to the primary.
    public static func conninfo(addresses: [String], port: Int = 5432) -> String {
        "host=\(addresses.joined(separator: ",")) port=\(port) user=postgres dbname=postgres connect_timeout=1 "
            + "target_session_attrs=read-write tcp_user_timeout=2000 options='-c statement_timeout=2000'"
    }

    public static let createTable = "CREATE TABLE IF NOT EXISTS \(table) (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"

    public var writes: [WorkloadHistory.Write] { acknowledged.withLock { $0 } }
    public var failedAttempts: Int { failed.load(ordering: .relaxed) }

    /// The first write acknowledged after `instant` (wall clock, ms) by a node other than `excluded`.
    public func firstAck(after instant: Double, notBy excluded: String?) -> WorkloadHistory.Write? {
        acknowledged.withLock { list in list.first { $0.ackedAt > instant && $0.node != excluded } }
    }

    /// The longest time without an acknowledged write from `start` to `end` (wall clock, ms).
    public func longestGap(from start: Double, to end: Double) -> Double {
        WorkloadChecker.longestGap(acknowledged.withLock { $0 }, from: start, to: end)
    }

    /// Stops the thread (bounded: a write in flight ends within its statement timeout).
    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        _ = done.wait(timeout: .now() + 10)
    }
}
