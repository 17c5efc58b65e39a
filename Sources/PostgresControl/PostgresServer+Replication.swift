import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Cloning, rewinding and configuring a server for streaming replication.
extension PostgresServer {
    /// Whether the data directory holds a PostgreSQL cluster (PG_VERSION present).
    public var hasData: Bool { FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") }

    /// A standby starts in recovery: `standby.signal` is there. A data directory without it was
    /// last a primary (or was just initialised).
    public var isStandbyConfigured: Bool { FileManager.default.fileExists(atPath: dataDirectory + "/standby.signal") }

    /// The system identifier from `global/pg_control`, readable while the server is stopped.
    public func systemIdentifierOnDisk() -> UInt64? { controlFile()?.systemIdentifier }

    /// The shutdown checkpoint when `pg_control` says the server was shut down cleanly as a
    /// primary (state `DB_SHUTDOWNED`); nil otherwise (an immediate stop, a crash: WAL after the
    /// last checkpoint, acknowledged commits included, is known only after crash recovery).
    public func cleanShutdownCheckpoint() -> UInt64? {
        guard let control = controlFile(), control.state == 1 else { return nil }
        return control.checkpoint
    }

    /// The leading fields of `ControlFileData` (PostgreSQL 15, 64-bit little-endian layout):
    /// system_identifier at 0, state at 16 (DBState: 1 shut down, 2 shut down in recovery,
    /// 6 in production), checkPoint at 32, checkPointCopy.redo at 40 and .ThisTimeLineID at 48.
    func controlFile() -> (systemIdentifier: UInt64, state: UInt32, checkpoint: UInt64, redo: UInt64, timeline: UInt32)? {
        // `global/` belongs to PostgreSQL's user: no link, no FIFO (pg_control is 8 kB).
        guard let bytes = UserOwnedFile.bytes(dataDirectory + "/global/pg_control", limit: 8_192), bytes.count >= 52 else { return nil }
        func integer(_ offset: Int, _ width: Int) -> UInt64 {
            bytes[offset..<(offset + width)].reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
        return (integer(0, 8), UInt32(integer(16, 4)), integer(32, 8), integer(40, 8), UInt32(integer(48, 4)))
    }

    /// Clones `source` (a libpq connection string to the primary, as the replication user) into
    /// the empty data directory with `pg_basebackup`, streaming the WAL it needs.
    public func cloneFrom(_ source: String) throws(PostgresError) {
        try prepareDirectory(dataDirectory, mode: 0o700)
        try run("pg_basebackup", ["--pgdata", dataDirectory, "--dbname", source, "--wal-method", "stream",
                                  "--checkpoint", "fast", "--no-password"])
    }

    /// Rewinds this (stopped) data directory to follow `source` (a superuser connection string to
    /// the current primary). Runs crash recovery first when the server was not shut down cleanly.
    /// Returns pg_rewind's output ("no rewind required", "Done!").
    @discardableResult
    public func rewind(from source: String) throws(PostgresError) -> String {
        try run("pg_rewind", ["--target-pgdata", dataDirectory, "--source-server", source])
    }

    /// Moves the data directory aside (`<dir>.<reason>-<unix time>`): never deletes data.
    public func moveAside(reason: String) throws(PostgresError) -> String {
        let target = "\(dataDirectory).\(reason)-\(Int(Date().timeIntervalSince1970))"
        guard rename(dataDirectory, target) == 0 else {
            throw PostgresError("cannot move \(dataDirectory) aside to \(target): \(String(cString: strerror(errno)))")
        }
        return target
    }

    /// Writes a file in the data directory, owned by the PostgreSQL user (mode 0600), replacing
    /// it atomically without following a link ([UserOwnedFile]).
    public func writeFile(_ name: String, _ contents: String) throws(PostgresError) {
        try UserOwnedFile.replace(name, in: dataDirectory, with: contents, owner: user)
    }

    public func removeFile(_ name: String) {
        unlink(dataDirectory + "/" + name)
    }

    /// Makes `postgresql.conf` include the agent's file (once).
    public func includeAgentSettings(file: String) throws(PostgresError) {
        let path = dataDirectory + "/postgresql.conf"
        guard let text = UserOwnedFile.read(path) else { throw PostgresError("cannot read \(path) (missing, not a regular file, or a link)") }
        let line = "include_if_exists = '\(file)'"
        guard !text.contains(line) else { return }
        try writeFile("postgresql.conf", text + "\n# Written by pgquorum: the agent's settings (replication, cluster parameters).\n\(line)\n")
    }

    /// The directory for the Unix socket, created for the PostgreSQL user.
    public func prepareSocketDirectory() throws(PostgresError) {
        try prepareDirectory(socketDirectory, mode: 0o700)
    }
}
