import CLibPQ
#if canImport(Glibc)
import Glibc
#endif

/// Why a PostgreSQL call failed, in one line (libpq's message without its trailing newline).
/// Connection strings never appear in it: they may hold a password.
public struct PostgresError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    /// The SQLSTATE of a server error (e.g. "42P01"), when there is one.
    public var sqlState: String?

    public init(_ description: String, sqlState: String? = nil) {
        self.description = description
        self.sqlState = sqlState
    }
}

/// One libpq connection. Blocking: the agent calls it from a thread of its own, never from an
/// event loop or the Raft task. Not thread-safe; closed when released.
public final class PostgresConnection {
    private var connection: OpaquePointer?

    /// Connects with a libpq connection string (`host=/run/x port=5432 user=postgres
    /// dbname=postgres connect_timeout=2`). Passwords belong in a passfile (`passfile=…`) or the
    /// environment (`PGPASSWORD`), never in a string that might be logged.
    public init(_ conninfo: String) throws(PostgresError) {
        guard let handle = PQconnectdb(conninfo) else { throw PostgresError("libpq could not allocate a connection") }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = Self.message(PQerrorMessage(handle))
            PQfinish(handle)
            throw PostgresError("cannot connect to PostgreSQL: \(message)")
        }
        // Server notices (a WARNING on an immediate shutdown, say) would go to stderr by default;
        // callers see failures as errors instead.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        connection = handle
    }

    deinit { if let connection { PQfinish(connection) } }

    /// Runs one statement; returns its rows as text (nil for SQL NULL). With a `timeout`, a
    /// server that does not answer in time (frozen, or stuck on a stalled disk) gets the
    /// connection closed and the call throws, instead of holding the caller forever.
    @discardableResult
    public func query(_ sql: String, timeout: Duration? = nil) throws(PostgresError) -> [[String?]] {
        guard let connection else { throw PostgresError("the connection is closed") }
        let answer: OpaquePointer?
        if let timeout {
            answer = try send(sql, on: connection, within: timeout)
        } else {
            answer = PQexec(connection, sql)
        }
        guard let result = answer else { throw PostgresError(Self.message(PQerrorMessage(connection))) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            break
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            throw PostgresError(Self.message(PQresultErrorMessage(result)), sqlState: state)
        }
        let rows = PQntuples(result), columns = PQnfields(result)
        return (0..<rows).map { row in
            (0..<columns).map { column in
                PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
            }
        }
    }

    /// `sql` sent without blocking, its result awaited until `timeout` (libpq's asynchronous
    /// calls: PQsendQuery, then poll on the socket and PQconsumeInput). The last result is
    /// returned (one statement gives one); on timeout the connection is closed.
    private func send(_ sql: String, on connection: OpaquePointer, within timeout: Duration) throws(PostgresError) -> OpaquePointer? {
        let deadline = ContinuousClock.now + timeout
        func waitFor(_ events: Int16) throws(PostgresError) {
            let milliseconds = max(0, (deadline - .now).nanoseconds / 1_000_000)
            var descriptor = pollfd(fd: PQsocket(connection), events: events, revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(milliseconds, Int64(Int32.max))))
            if ready == 0 || ContinuousClock.now >= deadline {
                close()
                throw PostgresError("PostgreSQL did not answer within \(timeout); the connection is closed")
            }
        }
        guard PQsendQuery(connection, sql) == 1 else { return nil }
        while true {
            let flushed = PQflush(connection)
            if flushed == 0 { break }
            if flushed < 0 { return nil }
            try waitFor(Int16(POLLOUT | POLLIN))
            if PQconsumeInput(connection) == 0 { return nil }
        }
        var last: OpaquePointer?
        while true {
            while PQisBusy(connection) == 1 {
                do { try waitFor(Int16(POLLIN)) } catch {
                    if let last { PQclear(last) }
                    throw error
                }
                if PQconsumeInput(connection) == 0 {
                    if let last { PQclear(last) }
                    return nil
                }
            }
            guard let next = PQgetResult(connection) else { return last }
            if let last { PQclear(last) }
            last = next
        }
    }

    /// The single value of a one-row, one-column query.
    public func value(_ sql: String, timeout: Duration? = nil) throws(PostgresError) -> String? {
        let rows = try query(sql, timeout: timeout)
        guard rows.count == 1, rows[0].count == 1 else {
            throw PostgresError("expected one value from the query, got \(rows.count) rows")
        }
        return rows[0][0]
    }

    public func close() {
        if let connection { PQfinish(connection) }
        connection = nil
    }

    private static func message(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "unknown error" }
        return String(cString: text).split(whereSeparator: \.isNewline).map { $0.trimmingCharacters() }.joined(separator: " ")
    }
}

private extension Substring {
    func trimmingCharacters() -> String {
        var text = self
        while text.first?.isWhitespace == true { text.removeFirst() }
        while text.last?.isWhitespace == true { text.removeLast() }
        return String(text)
    }
}

/// A position in the write-ahead log, as PostgreSQL prints it: `16/B374D848`.
public struct LSN: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let high = UInt32(parts[0], radix: 16), let low = UInt32(parts[1], radix: 16) else { return nil }
        value = UInt64(high) << 32 | UInt64(low)
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.value < rhs.value }

    /// Bytes from `other` to this position (0 when `other` is ahead).
    public func bytes(after other: LSN) -> UInt64 { value > other.value ? value - other.value : 0 }
}
