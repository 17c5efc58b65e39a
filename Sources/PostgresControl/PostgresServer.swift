import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a server says about itself; the agent reports these to the leader.
public struct PostgresFacts: Sendable, Equatable {
    /// Set by initdb; every clone (pg_basebackup) shares it. Distinguishes clusters.
    public var systemIdentifier: UInt64
    public var inRecovery: Bool
    /// The timeline of the latest checkpoint (it follows a promotion at the next checkpoint).
    public var timeline: UInt32
    /// Primary: the current write position. Standby: the last position received.
    public var receivedLSN: LSN?
    /// Standby: the last position replayed (nil on a primary).
    public var replayedLSN: LSN?
}

/// One PostgreSQL server's data directory and processes, driven through PostgreSQL's own
/// programs (`initdb`, `pg_ctl`). Blocking, like `PostgresConnection`.
public final class PostgresServer: Sendable {
    public let dataDirectory: String
    public let port: Int
    /// Where the server puts its Unix socket (and where local connections look for it).
    public let socketDirectory: String
    public let binDirectory: String
    /// Run PostgreSQL's programs as this user (required when the caller is root).
    public let user: OSUser?

    public static let defaultBinDirectory = "/usr/lib/postgresql/15/bin"

    public init(dataDirectory: String, port: Int, socketDirectory: String,
                binDirectory: String = PostgresServer.defaultBinDirectory, user: OSUser? = nil) throws(PostgresError) {
        if geteuid() == 0, user == nil || user?.uid == 0 {
            throw PostgresError("PostgreSQL refuses to run as root; name an unprivileged user to run it as (e.g. postgres)")
        }
        self.dataDirectory = dataDirectory
        self.port = port
        self.socketDirectory = socketDirectory
        self.binDirectory = binDirectory
        self.user = user
    }

    /// libpq connection string for local connections over the Unix socket.
    public func conninfo(database: String = "postgres", user role: String = "postgres") -> String {
        "host=\(socketDirectory) port=\(port) user=\(role) dbname=\(database) connect_timeout=5"
    }

    public func connect(database: String = "postgres") throws(PostgresError) -> PostgresConnection {
        try PostgresConnection(conninfo(database: database))
    }

    /// Creates the data directory with `initdb`: superuser `postgres`, trust for local socket
    /// connections only, data checksums on (pg_rewind needs checksums or wal_log_hints).
    public func initdb(superuser: String = "postgres") throws(PostgresError) {
        if let contents = try? FileManager.default.contentsOfDirectory(atPath: dataDirectory), !contents.isEmpty {
            throw PostgresError("\(dataDirectory) is not empty; initdb only creates new data directories")
        }
        try prepareDirectory(dataDirectory, mode: 0o700)
        try prepareDirectory(socketDirectory, mode: 0o700)
        try run("initdb", ["--pgdata", dataDirectory, "--username", superuser, "--auth-local", "trust",
                           "--auth-host", "reject", "--data-checksums", "--encoding", "UTF8", "--no-instructions"])
    }

    /// Starts the server (`pg_ctl start`, waiting until it accepts connections). Listens on the
    /// Unix socket only unless `settings` sets `listen_addresses`.
    public func start(settings: [String: String] = [:]) throws(PostgresError) {
        var all = ["port": "\(port)", "unix_socket_directories": "'\(socketDirectory)'", "listen_addresses": "''"]
        for (key, value) in settings { all[key] = value }
        let options = all.sorted { $0.key < $1.key }.map { "-c \($0.key)=\($0.value)" }.joined(separator: " ")
        try run("pg_ctl", ["start", "--pgdata", dataDirectory, "--wait", "--timeout", "60", "--silent",
                           "--log", dataDirectory + "/server.log", "-o", options])
    }

    public enum StopMode: String, Sendable {
        /// Disconnect clients, checkpoint, stop.
        case fast
        /// Stop at once; crash recovery runs at the next start.
        case immediate
    }

    public func stop(_ mode: StopMode = .fast) throws(PostgresError) {
        try run("pg_ctl", ["stop", "--pgdata", dataDirectory, "--mode", mode.rawValue, "--wait", "--timeout", "60", "--silent"])
    }

    /// Whether a postmaster runs for this data directory (`pg_ctl status`).
    public var isRunning: Bool {
        (try? run("pg_ctl", ["status", "--pgdata", dataDirectory])) != nil
    }

    public func facts(_ connection: PostgresConnection) throws(PostgresError) -> PostgresFacts {
        guard let row = try connection.query("""
            SELECT (SELECT system_identifier FROM pg_control_system()),
                   pg_is_in_recovery(),
                   (SELECT timeline_id FROM pg_control_checkpoint()),
                   CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END,
                   CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() END
            """).first, row.count == 5,
            let identifier = row[0].flatMap({ UInt64($0) }), let timeline = row[2].flatMap({ UInt32($0) }) else {
            throw PostgresError("unexpected answer from pg_control_system / pg_control_checkpoint")
        }
        return PostgresFacts(systemIdentifier: identifier, inRecovery: row[1] == "t", timeline: timeline,
                             receivedLSN: row[3].flatMap(LSN.init), replayedLSN: row[4].flatMap(LSN.init))
    }

    // MARK: - Running PostgreSQL's programs

    /// Runs a PostgreSQL program (as `user` when set); on failure, the program's last output
    /// line is the error.
    @discardableResult
    func run(_ program: String, _ arguments: [String]) throws(PostgresError) -> String {
        let (status, output) = try execute(program, arguments)
        guard status == 0 else {
            let last = output.split(whereSeparator: \.isNewline).last.map(String.init) ?? "no output"
            throw PostgresError("\(program) failed (exit \(status)): \(last)")
        }
        return output
    }

    /// The output whatever the exit status, for programs that end in an error by design
    /// (`pg_waldump` stops at the first invalid record and says where).
    func runAllowingFailure(_ program: String, _ arguments: [String]) throws(PostgresError) -> String {
        try execute(program, arguments).output
    }

    private func execute(_ program: String, _ arguments: [String]) throws(PostgresError) -> (status: Int32, output: String) {
        let path = binDirectory + "/" + program
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw PostgresError("\(path) does not exist; install PostgreSQL 15 (apt-get install postgresql-15) or set the bin directory")
        }
        return try ChildProcess.run(path, arguments, user: user)
    }

    /// Creates `path` (and parents) owned by `user` with `mode`. The mode and owner are set on
    /// the directory's own descriptor, opened without following a link: a link in its place is
    /// refused, never followed.
    func prepareDirectory(_ path: String, mode: Int) throws(PostgresError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
        } catch {
            throw PostgresError("cannot create \(path): \(error.localizedDescription)")
        }
        let directory = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else {
            throw PostgresError("cannot open \(path) (\(String(cString: strerror(errno)))); if it is a link, move it aside")
        }
        defer { close(directory) }
        guard fchmod(directory, mode_t(mode)) == 0 else {
            throw PostgresError("cannot set the mode of \(path): \(String(cString: strerror(errno)))")
        }
        if let user, fchown(directory, user.uid, user.gid) != 0 {
            throw PostgresError("cannot give \(path) to \(user.name): \(String(cString: strerror(errno)))")
        }
    }
}
