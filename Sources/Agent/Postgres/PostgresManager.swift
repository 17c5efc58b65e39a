import ClusterConfig
import ClusterState
import Foundation
import Logging
import PostgresControl
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs this node's PostgreSQL as the Raft task's `PostgresIntent` says, on a thread of its own
/// (every PostgreSQL call blocks; the thread lives as long as the agent, which the postmaster's
/// parent-death signal needs). Each round it reconciles once — clone, rewind, start, promote,
/// fence, follow — then checks health and publishes a `LocalPostgresStatus`.
///
/// Safety rules kept here (docs/architecture.md):
/// - PostgreSQL is always started as a standby; it becomes writable only through a promotion,
///   done while the intent says `writable` and after the fence keeper holds the lease deadline.
/// - A running primary that is no longer allowed to be one is stopped at once (immediate).
/// - Data is never deleted: a directory that cannot be used is moved aside, and only when the
///   configuration allows it or it is an uncommitted initdb of this agent.
final class PostgresManager: @unchecked Sendable {
    private let config: ClusterConfig
    private let local: NodeConfig
    private var logger: Logger
    private let onStatus: @Sendable (LocalPostgresStatus) -> Void
    private let intentBox = Mutex(PostgresIntent())
    private let wake = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)
    /// Set when the agent begins to shut down: PostgreSQL may still be stopped (a hand-over),
    /// but is not started again.
    private let leaving = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let interval: Duration
    /// The write permission, with the running postmaster's keeper line (shared with the Raft task).
    let permission = WritePermission()
    let status = Mutex(LocalPostgresStatus.starting)

    // Owned by the PostgreSQL thread.
    private var server: PostgresServer?
    private var postmaster: Postmaster?
    private var connection: PostgresConnection?
    private var upstream: String?
    private var failedChecks: UInt32 = 0
    private var failingSince: ContinuousClock.Instant?
    private var lastError = ""
    private var notStreamingSince: ContinuousClock.Instant?
    private var lastStreamedAt: ContinuousClock.Instant?
    private var lastRewind: ContinuousClock.Instant?
    private var lastCloneAttempt: ContinuousClock.Instant?
    private var lastFailedStart: ContinuousClock.Instant?
    /// Starts in a row that ended with PostgreSQL exiting.
    private var failedStarts = 0
    private var lastSlotCheck: ContinuousClock.Instant?
    private var stoppedAtPosition: UInt64?
    private var lastLoggedError = ""
    /// The epoch and term of the intent being carried out.
    private var epoch: UInt64 = 0
    private var term: UInt64 = 0
    /// The intent names this node primary.
    private var namedPrimary = false
    /// The last health check found a primary (so its exit is a fence or a crash).
    private var runningAsPrimary = false
    private var fenceBackoff = FenceBackoff()
    /// The end of the WAL on disk, kept while the data directory's fingerprint holds.
    private var diskWAL: (fingerprint: [Int], end: WALEnd?)?

    init(config: ClusterConfig, local: NodeConfig, logger: Logger, onStatus: @escaping @Sendable (LocalPostgresStatus) -> Void) {
        self.config = config
        self.local = local
        var logger = logger
        logger[metadataKey: "component"] = "postgres"
        self.logger = logger
        self.onStatus = onStatus
        self.interval = .milliseconds(max(20, config.timing.heartbeatMilliseconds))
    }

    var settings: PostgresSettings { config.postgres }
    private var markerPath: String { local.dataDirectory + "/postgres.uncommitted-initdb" }
    /// Present while the data directory was last a primary and has not been rewound since: it may
    /// hold WAL the current primary never had, so it must be rewound before it follows anyone.
    private var rewindMarkerPath: String { local.dataDirectory + "/postgres.needs-rewind" }
    private var socketDirectory: String { local.dataDirectory + "/run" }

    /// Checks what must hold before the thread starts (binaries, OS user); one line on failure.
    func prepare() throws(AgentStartError) {
        var user: OSUser?
        if geteuid() == 0 {
            guard let named = OSUser.named(settings.osUser), named.uid != 0 else {
                throw AgentStartError("postgresql.os_user \(settings.osUser) does not exist (or is root); PostgreSQL must run as an unprivileged user: create it or name another")
            }
            user = named
            // The agent writes its Raft state, lock, markers and PostgreSQL's log as root under
            // data_dir: nobody but root may be able to swap a directory on that path for a link.
            if let unsafe = UserOwnedFile.firstDirectoryOthersControl(on: local.dataDirectory) {
                throw AgentStartError("the data directory \(local.dataDirectory) is not safe for an agent running as root: \(unsafe); choose a data_dir under directories only root can change (e.g. /var/lib/pgquorum)")
            }
            // PostgreSQL's user must reach <data_dir>/postgres and <data_dir>/run, not the Raft state.
            let directory = open(local.dataDirectory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if directory >= 0 {
                fchmod(directory, 0o711)
                close(directory)
            }
            if local.postgresPort != nil, let blocked = named.firstBlockedDirectory(on: local.postgresDataDirectory) {
                let mode = String(blocked.mode, radix: 8)
                throw AgentStartError("PostgreSQL's OS user \(named.name) cannot enter \(blocked.path) (mode \(mode), on the way to \(local.postgresDataDirectory)); choose a data_dir it can reach, or let it through: chmod o+x \(blocked.path)")
            }
        }
        guard FileManager.default.isExecutableFile(atPath: settings.binDirectory + "/postgres") else {
            throw AgentStartError("\(settings.binDirectory)/postgres does not exist; install PostgreSQL 15 (apt-get install postgresql-15) or set postgresql.bin_dir")
        }
        if let passfile = settings.passfile {
            // libpq ignores a passfile others can read, and PostgreSQL's programs (and its WAL
            // receiver) read it as the PostgreSQL user.
            // Its owner could swap a link in later: the file itself, read without following links.
            var info = stat()
            guard lstat(passfile, &info) == 0 else { throw AgentStartError("postgresql.passfile \(passfile) cannot be read: \(String(cString: strerror(errno)))") }
            guard info.st_mode & S_IFMT == S_IFREG else {
                throw AgentStartError("postgresql.passfile \(passfile) is not a regular file (a link?); name the file itself")
            }
            if info.st_mode & 0o077 != 0 {
                throw AgentStartError("postgresql.passfile \(passfile) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); libpq ignores it: chmod 600 it")
            }
            if let user, info.st_uid != user.uid {
                throw AgentStartError("postgresql.passfile \(passfile) must belong to \(user.name), the PostgreSQL user that reads it: chown \(user.name) \(passfile)")
            }
        }
        guard let port = local.postgresPort else { return }
        UserOwnedFile.removeLeftovers(in: local.postgresDataDirectory)
        if !usesPasswords {
            guard settings.insecureTrust else {
                throw AgentStartError("no password for PostgreSQL's superuser and replication user: set postgresql.passfile (a libpq password file, mode 0600) or PGPASSWORD in the agent's environment; for a lab or a test only, postgresql.insecure_trust: true lets the nodes' hosts in without one")
            }
            logger.warning("postgresql.insecure_trust: the nodes' hosts may connect as the superuser and the replication user without a password; use a passfile outside labs and tests")
        }
        do {
            server = try PostgresServer(dataDirectory: local.postgresDataDirectory, port: port, socketDirectory: socketDirectory,
                                        binDirectory: settings.binDirectory, user: user)
        } catch {
            throw AgentStartError("\(error)")
        }
    }

    func start() {
        let thread = Thread { [self] in
            // Foundation's `Thread.name` does not reliably reach the kernel (see
            // DedicatedThreadExecutor): `top -H` showed this thread under a pool thread's name.
            DedicatedThreadExecutor.nameCurrentThread("pgquorum-pg")
            run()
            finished.signal()
        }
        thread.stackSize = 4 << 20
        thread.start()
    }

    func update(_ intent: PostgresIntent) {
        let changed = intentBox.withLock { current in
            let changed = !current.sameDecision(as: intent)
            current = intent
            return changed
        }
        if changed { wake.signal() }
    }

    /// The agent is shutting down: from now on PostgreSQL is not started again.
    func beginShutdown() {
        leaving.store(true, ordering: .sequentiallyConsistent)
    }

    /// Stops PostgreSQL cleanly (fast shutdown) and ends the thread. Bounded.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        wake.signal()
        _ = finished.wait(timeout: .now() + 40)
    }

    // MARK: - The loop

    private func run() {
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let intent = intentBox.withLock { $0 }
            epoch = intent.epoch
            term = intent.term
            namedPrimary = intent.primary == local.name
            reconcile(intent)
            check(intent)
            _ = wake.wait(timeout: .now() + .milliseconds(Int(interval.milliseconds)))
        }
        connection = nil
        if let postmaster {
            logger.notice("stopping PostgreSQL (fast shutdown)")
            permission.attach(nil)
            postmaster.stopFast()
        }
        postmaster = nil
    }

    private func reconcile(_ intent: PostgresIntent) {
        guard let server else { return }
        reap()
        do {
            if intent.holdStopped {
                try stopForSwitchover()
                return
            }
            stoppedAtPosition = nil
            guard intent.stateIsCurrent else { return }
            guard let identifier = intent.systemIdentifier else { return try beforeBootstrap(intent, server) }
            if FileManager.default.fileExists(atPath: markerPath), server.systemIdentifierOnDisk() == identifier {
                // Our initdb is the cluster's now.
                unlink(markerPath)
            }
            if server.hasData, let onDisk = server.systemIdentifierOnDisk(), onDisk != identifier {
                try foreignData(onDisk: onDisk, cluster: identifier, server)
                return
            }
            if intent.primary == local.name {
                try asPrimary(intent, server)
            } else {
                try asReplica(of: intent.primary, server)
            }
        } catch {
            problem("\(error)")
        }
    }

    // MARK: Bootstrap

    private func beforeBootstrap(_ intent: PostgresIntent, _ server: PostgresServer) throws {
        guard intent.mayBootstrap else {
            // Not (or no longer) the bootstrapping leader: nothing may be writable here.
            if let connection, (try? isPrimary(connection)) == true { fenceNow("lost leadership before the bootstrap committed") }
            return
        }
        if !server.hasData {
            logger.notice("initialising a new PostgreSQL cluster (initdb)", metadata: ["data": "\(server.dataDirectory)"])
            FileManager.default.createFile(atPath: markerPath, contents: Data("initdb by this agent; not yet the cluster's\n".utf8))
            try server.initdb(superuser: settings.superuser)
        }
        try ensureRunning(server, upstream: nil)
        guard let connection, intent.writable else { return }
        if try !isPrimary(connection) {
            try promote(connection, until: intent.writableUntil, reason: "bootstrap")
            try createRoles(connection)
        }
    }

    private func createRoles(_ connection: PostgresConnection) throws {
        let role = settings.replicationUser
        let exists = try connection.value("SELECT count(*) FROM pg_roles WHERE rolname = \(literal(role))") != "0"
        var sql = exists ? "ALTER ROLE \(identifier(role)) WITH REPLICATION LOGIN" : "CREATE ROLE \(identifier(role)) WITH REPLICATION LOGIN"
        if let password = password(for: role) { sql += " PASSWORD \(literal(password))" }
        try connection.query(sql)
        if let password = password(for: settings.superuser) {
            try connection.query("ALTER ROLE \(identifier(settings.superuser)) WITH PASSWORD \(literal(password))")
        }
    }

    /// A data directory whose system identifier is not the cluster's.
    private func foreignData(onDisk: UInt64, cluster: UInt64, _ server: PostgresServer) throws {
        stopPostmaster(immediate: true)
        if FileManager.default.fileExists(atPath: markerPath) || settings.allowReclone {
            let moved = try server.moveAside(reason: "foreign")
            unlink(markerPath)
            logger.warning("moved aside a data directory of another PostgreSQL cluster; cloning from the primary",
                           metadata: ["moved_to": "\(moved)", "system_identifier": "\(onDisk)"])
            return
        }
        throw PostgresError("\(server.dataDirectory) holds PostgreSQL system \(onDisk), not this cluster's \(cluster); move it aside (or set postgresql.allow_reclone) and the agent clones the primary")
    }

    // MARK: Primary

    private func asPrimary(_ intent: PostgresIntent, _ server: PostgresServer) throws {
        if postmaster == nil, fenceBackoff.remaining(term: term, at: .now) != nil {
            throw PostgresError("fenced \(fenceBackoff.fences) times in term \(term); PostgreSQL starts again after a pause of \(Int(fenceBackoff.delay(after: fenceBackoff.fences) / .seconds(1))) s instead of restarting in a loop")
        }
        guard intent.writable else {
            // Named primary but not (yet, or no longer) allowed to write: the promotion waits
            // for the lease. A primary whose keeper holds a grant is the keeper's to freeze, and
            // the Raft task's to continue or stop (a blip must not cost a restart); any other
            // running primary (promoted behind the agent's back) is stopped now.
            if !permission.keeperEnforces, let connection, (try? isPrimary(connection)) == true { fenceNow("the lease is not held") }
            if server.hasData { try ensureRunning(server, upstream: nil) }
            return
        }
        guard server.hasData else {
            throw PostgresError("this node is the primary of epoch \(intent.epoch) but has no data directory; fail over to another node (pgquorum failover NODE)")
        }
        try ensureRunning(server, upstream: nil)
        guard let connection else { return }
        if try !isPrimary(connection) {
            try promote(connection, until: intent.writableUntil, reason: "epoch \(intent.epoch)")
        }
        try ensureSlots(connection)
    }

    private func promote(_ connection: PostgresConnection, until deadline: ContinuousClock.Instant?, reason: String) throws {
        // The keeper holds the lease's end before PostgreSQL can write; the Raft task renews it
        // on every heartbeat while the lease holds. An intent whose deadline has passed (this
        // thread was frozen with the process, say) promotes nothing.
        guard let deadline, ContinuousClock.now < deadline else { return }
        // The intent may be stale: promote only while the one write permission holds (the
        // keeper enforces it, also if it is revoked the next moment).
        guard permission.deadline() != nil else { return }
        logger.notice("promoting PostgreSQL", metadata: ["reason": "\(reason)"])
        let promoted = try connection.value("SELECT pg_promote(true, 60)")
        guard promoted == "t" else { throw PostgresError("pg_promote did not finish within 60 s") }
        upstream = nil
        // Every new primary creates the replicas' slots at once (PostgreSQL 15 does not carry
        // them over a promotion).
        lastSlotCheck = nil
        FileManager.default.createFile(atPath: rewindMarkerPath, contents: Data("last a primary; rewind before following another node\n".utf8))
        logger.notice("PostgreSQL is primary")
        // pg_control names the new timeline only after the next checkpoint, which PostgreSQL
        // spreads over minutes; pg_rewind reads it there, on a source and on a target alike
        // (this node, if it is fenced soon). So checkpoint now, beside this thread.
        let conninfo = localConninfo, logger = self.logger
        Thread.detachNewThread {
            do {
                try PostgresConnection(conninfo).query("CHECKPOINT")
            } catch {
                logger.info("the checkpoint after the promotion failed; the next one names the new timeline", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One physical slot per other PostgreSQL node, created by the primary's agent after every
    /// promotion (PostgreSQL 15 does not carry slots over a failover).
    private func ensureSlots(_ connection: PostgresConnection) throws {
        if let last = lastSlotCheck, ContinuousClock.now - last < .seconds(5) { return }
        let existing = Set(try connection.query("SELECT slot_name FROM pg_replication_slots").compactMap { $0.first ?? nil })
        for node in config.nodes where node.name != local.name && !node.isWitness {
            let slot = Self.slotName(node.name)
            guard !existing.contains(slot) else { continue }
            try connection.query("SELECT pg_create_physical_replication_slot(\(literal(slot)), true)")
            logger.info("created replication slot", metadata: ["slot": "\(slot)"])
        }
        lastSlotCheck = .now
    }

    static func slotName(_ node: String) -> String { "pgquorum_" + node.replacingOccurrences(of: "-", with: "_") }

    // MARK: Replica

    private func asReplica(of primary: String?, _ server: PostgresServer) throws {
        if let connection, (try? isPrimary(connection)) == true {
            fenceNow("\(primary ?? "another node") is the primary of the current epoch")
        }
        let source = primary.flatMap { config.node(named: $0) }.flatMap { $0.isWitness ? nil : $0 }
        if !server.hasData {
            guard let source else { return }
            // A primary that is still starting refuses; retry once a second, not every round.
            if let last = lastCloneAttempt, ContinuousClock.now - last < .seconds(1) { return }
            lastCloneAttempt = .now
            logger.notice("cloning from the primary (pg_basebackup)", metadata: ["primary": "\(source.name)"])
            try server.cloneFrom(replicationConninfo(to: source))
            try server.writeFile("standby.signal", "")
            logger.notice("clone complete")
        } else if FileManager.default.fileExists(atPath: rewindMarkerPath), let source {
            // Last a primary: its timeline may have diverged from the new primary's.
            stopPostmaster(immediate: false)
            guard try rewind(server, from: source) else { return }
            unlink(rewindMarkerPath)
        }
        if failedStarts >= 5, let source, postmaster == nil {
            // It will not start as a replica of this primary (its WAL does not fit the primary's
            // timeline history, say).
            guard settings.allowReclone, (try? PostgresConnection(superuserConninfo(to: source))) != nil else {
                throw PostgresError("PostgreSQL does not start as a replica of \(source.name) (see \(local.dataDirectory)/postgres.log); the data directory is kept. Set postgresql.allow_reclone: true to clone afresh (the old directory is moved aside), or rebuild it by hand")
            }
            let moved = try server.moveAside(reason: "unstartable")
            logger.warning("PostgreSQL would not start as a replica; moved the data directory aside and cloning afresh", metadata: ["moved_to": "\(moved)"])
            failedStarts = 0
            unlink(rewindMarkerPath)
            return
        }
        try ensureRunning(server, upstream: source)
        if let source, upstream != source.name {
            try writeAgentSettings(server, upstream: source)
            _ = try? connection?.query("SELECT pg_reload_conf()")
            upstream = source.name
            logger.notice("following the primary", metadata: ["primary": "\(source.name)"])
        }
    }

    /// Returns false when a rewind ran less than 2 s ago (it is not retried in a tight loop).
    @discardableResult
    private func rewind(_ server: PostgresServer, from source: NodeConfig) throws -> Bool {
        if let last = lastRewind, ContinuousClock.now - last < .seconds(2) { return false }
        lastRewind = .now
        // An unreachable primary is not a reason to rewind, let alone to clone afresh.
        guard let sourceConnection = try? PostgresConnection(superuserConninfo(to: source)) else {
            throw PostgresError("cannot reach the primary \(source.name) at \(source.host):\(source.postgresPort ?? 5432) to rewind from; waiting")
        }
        // pg_rewind takes the source's timeline from its pg_control, which a promotion updates
        // only at the checkpoint after it, and that one is spread out over minutes under load.
        // Rewound to a stale timeline, the data directory no longer starts at all.
        let timelines = try? sourceConnection.query(
            "SELECT (SELECT timeline_id FROM pg_control_checkpoint()), ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
        if let row = timelines?.first, row.count == 2, row[0] != row[1] {
            logger.info("checkpointing the just-promoted primary before the rewind", metadata: ["primary": "\(source.name)"])
            // Bounded: a source that stalls must not hold this thread (it reports and reacts).
            _ = try sourceConnection.query("SET statement_timeout = '60s'")
            _ = try sourceConnection.query("CHECKPOINT")
        }
        sourceConnection.close()
        logger.notice("rewinding to follow the primary (pg_rewind)", metadata: ["primary": "\(source.name)"])
        do {
            let output = try server.rewind(from: superuserConninfo(to: source))
            let last = output.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
            logger.notice("rewind complete", metadata: ["pg_rewind": "\(last)"])
        } catch {
            guard settings.allowReclone else {
                throw PostgresError("pg_rewind failed (\(error)); the data directory is kept. Set postgresql.allow_reclone: true to clone afresh (the old directory is moved aside), or rebuild it by hand")
            }
            let moved = try server.moveAside(reason: "rewind-failed")
            logger.warning("pg_rewind failed; moved the data directory aside and cloning afresh",
                           metadata: ["error": "\(error)", "moved_to": "\(moved)"])
            try server.cloneFrom(replicationConninfo(to: source))
            try server.writeFile("standby.signal", "")
        }
        return true
    }

    // MARK: Switchover

    private func stopForSwitchover() throws {
        guard let postmaster else { return }
        var position: UInt64?
        if let connection, let text = try? connection.value("SELECT pg_current_wal_lsn()"), let lsn = LSN(text) { position = lsn.value }
        connection = nil
        runningAsPrimary = false
        logger.notice("stopping PostgreSQL cleanly for a switchover")
        // The keeper stays attached while the server shuts down: the Raft task keeps renewing
        // it while this node still holds the lease, and a revoke still reaches it.
        postmaster.stopFast()
        permission.attach(nil)
        self.postmaster = nil
        upstream = nil
        // The shutdown checkpoint comes after the last position seen: read the final one from
        // disk — only from a clean shutdown. A fast shutdown that ran out of time ends in an
        // immediate stop, after which acknowledged commits may lie past both the last checkpoint
        // and the position read before the stop: no position is safe to hand over at, so the
        // move waits out its deadline, the rewind marker stays, and this node stays primary.
        guard let clean = server?.cleanShutdownCheckpoint() else {
            stoppedAtPosition = nil
            logger.error("PostgreSQL did not shut down cleanly for the switchover (the fast shutdown ran past 30 s, or the lease ended and the fence keeper stopped it); the primary stays here",
                         metadata: ["last_seen": "\(position.map { "\(LSN($0))" } ?? "unknown")"])
            return
        }
        stoppedAtPosition = max(clean, position ?? 0)
        // A clean stop whose WAL the target receives in full before it takes over: this
        // directory is a prefix of the new primary's history, nothing to rewind. (If the move
        // is abandoned this node promotes itself again, which sets the marker again.) It starts
        // next as a standby of whoever takes over.
        try? server?.writeFile("standby.signal", "")
        unlink(rewindMarkerPath)
    }

    // MARK: Processes

    private func ensureRunning(_ server: PostgresServer, upstream source: NodeConfig?) throws {
        if postmaster != nil, connection != nil { return }
        if postmaster == nil {
            if leaving.load(ordering: .sequentiallyConsistent) { throw PostgresError("the agent is shutting down") }
            // A server that will not start is retried twice a second, not on every round.
            if let failed = lastFailedStart, ContinuousClock.now - failed < .milliseconds(500) {
                throw PostgresError(lastError.isEmpty ? "PostgreSQL does not start" : lastError)
            }
            try writeAgentSettings(server, upstream: source)
            upstream = source?.name
            if !server.isStandbyConfigured {
                // Last a primary (or a fresh initdb): remember until rewound (see rewindMarkerPath).
                FileManager.default.createFile(atPath: rewindMarkerPath, contents: Data("last a primary; rewind before following another node\n".utf8))
            }
            // Always a standby at start: only a promotion makes it writable (see the type's doc).
            try server.writeFile("standby.signal", "")
            try server.prepareSocketDirectory()
            let started = try Postmaster.start(server: server, options: [
                "port": "\(server.port)", "listen_addresses": local.host == "localhost" ? "localhost" : local.host,
                "unix_socket_directories": socketDirectory, "cluster_name": local.name,
            ], logFile: local.dataDirectory + "/postgres.log", freezeLimit: .milliseconds(Int64(config.timing.freezeLimitMilliseconds)))
            postmaster = started
            permission.attach(started.fence)
            logger.info("started PostgreSQL", metadata: ["pid": "\(started.pid)", "upstream": "\(source?.name ?? "none")"])
        }
        // Wait (bounded) until it accepts connections: crash recovery may take a while. Until
        // then the leader ranks this node by the WAL it has on disk (a crashed primary may hold
        // acknowledged commits no replica received).
        if connection == nil {
            if lastError.isEmpty { lastError = "starting (crash recovery or replay of local WAL)" }
            publish(downReport())
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while connection == nil {
            guard let postmaster, postmaster.isRunning else {
                reap()
                lastFailedStart = .now
                failedStarts += 1
                throw PostgresError("PostgreSQL exited while starting; see \(local.dataDirectory)/postgres.log")
            }
            if let opened = try? PostgresConnection(localConninfo) {
                connection = opened
                lastFailedStart = nil
                failedStarts = 0
                break
            }
            if stopping.load(ordering: .relaxed) { throw PostgresError("the agent is stopping") }
            guard ContinuousClock.now < deadline else {
                throw PostgresError("PostgreSQL did not accept connections within 60 s; see \(local.dataDirectory)/postgres.log")
            }
            usleep(20_000)
        }
    }

    /// Notices a postmaster that exited (crash, fence keeper, OOM killer), and stops one whose
    /// fence keeper died (nothing would stop it if this agent froze).
    private func reap() {
        if let postmaster, postmaster.isRunning, !postmaster.keeperIsAlive {
            logger.error("the fence keeper died; stopping PostgreSQL (it is restarted with a new keeper)")
            postmaster.stopImmediately()
        }
        guard let postmaster, !postmaster.isRunning else { return }
        logger.warning("PostgreSQL exited", metadata: ["pid": "\(postmaster.pid)"])
        // The named primary died as one (its keeper fenced it, or it crashed).
        if runningAsPrimary, namedPrimary { fenceBackoff.fenced(term: term, at: .now) }
        runningAsPrimary = false
        permission.attach(nil)
        self.postmaster = nil
        connection = nil
        upstream = nil
    }

    /// Stops a primary that may no longer accept writes: immediate shutdown, no checkpoint.
    private func fenceNow(_ why: String) {
        logger.warning("fencing: stopping the primary at once", metadata: ["reason": "\(why)"])
        if namedPrimary { fenceBackoff.fenced(term: term, at: .now) }
        stopPostmaster(immediate: true)
    }

    private func stopPostmaster(immediate: Bool) {
        connection = nil
        runningAsPrimary = false
        guard let postmaster else { return }
        permission.attach(nil)
        if immediate { postmaster.stopImmediately() } else { postmaster.stopFast() }
        self.postmaster = nil
        upstream = nil
    }

    // MARK: Health

    private func check(_ intent: PostgresIntent) {
        guard server != nil else {
            publish(LocalPostgresStatus.witness)
            return
        }
        var report = MemberReport(role: .stopped, healthy: false, epoch: intent.epoch)
        if let connection, postmaster != nil {
            do {
                report = try measure(connection, epoch: intent.epoch)
                runningAsPrimary = report.role == .primary
                failedChecks = 0
                failingSince = nil
                lastError = ""
            } catch {
                self.connection = nil
                problem("health check failed: \(error)")
            }
        } else if postmaster != nil {
            // Running but not connected: try again next round.
            self.connection = try? PostgresConnection(localConninfo)
            if self.connection == nil { problem("health check failed: cannot connect") }
        } else if lastError.isEmpty {
            lastError = "PostgreSQL is not running"
        }
        if !report.healthy { report = downReport() }
        // A replica that cannot stream for a while may have diverged (it had WAL the new primary
        // never received): rewind it. At once (1 s, time for the WAL receiver to try) when the
        // committed promotion proves it: the primary moved to a newer timeline, and this replica
        // holds WAL beyond the primary's position when it was chosen. Otherwise after 10 s.
        if report.role == .replica, !report.streaming, upstream != nil {
            if notStreamingSince == nil { notStreamingSince = .now }
            let diverged = intent.promotion.map { $0.timeline > report.timeline
                && max(report.receivedPosition, report.replayedPosition) > $0.walPosition } ?? false
            let patience: Duration = diverged ? .seconds(1) : .seconds(10)
            if let since = notStreamingSince, ContinuousClock.now - since > patience,
               let source = upstream.flatMap({ config.node(named: $0) }), let server,
               (try? PostgresConnection(superuserConninfo(to: source))) != nil {
                // The primary answers, yet this replica does not stream: it has diverged.
                logger.warning(diverged ? "diverged from the primary's new timeline (WAL beyond its promotion point); rewinding"
                                        : "not streaming from the primary for 10 s; rewinding",
                               metadata: ["primary": "\(source.name)", "timeline": "\(report.timeline)",
                                          "position": "\(LSN(max(report.receivedPosition, report.replayedPosition)))",
                                          "promotion": "\(intent.promotion.map { "timeline \($0.timeline) at \(LSN($0.walPosition))" } ?? "none")"])
                stopPostmaster(immediate: false)
                notStreamingSince = nil
                do { try rewind(server, from: source) } catch { problem("\(error)") }
            }
        } else {
            notStreamingSince = nil
        }
        publish(report)
    }

    /// PostgreSQL does not run or does not answer: what is on disk (its cluster, how far its WAL
    /// reaches) and what went wrong.
    private func downReport() -> MemberReport {
        var report = MemberReport(role: .stopped, healthy: false, failedChecks: failedChecks, epoch: epoch, lastError: lastError)
        guard let server else { return report }
        report.systemIdentifier = server.systemIdentifierOnDisk() ?? 0
        let fingerprint = server.walFingerprint()
        if diskWAL?.fingerprint != fingerprint {
            let end = server.walEndOnDisk()
            diskWAL = (fingerprint, end)
            if let end { logger.info("the WAL on disk ends at \(end)") }
        }
        if let end = diskWAL?.end {
            report.timeline = end.timeline
            report.receivedPosition = end.position
        }
        return report
    }

    /// How long a health query may take. A server that does not answer by then (frozen past
    /// its keeper, or stuck on a stalled disk) loses the connection and counts as a failed
    /// check, so the thread goes on and the report says so, instead of the last healthy one
    /// standing while the thread waits forever.
    static let healthQueryTimeout = Duration.seconds(5)

    private func measure(_ connection: PostgresConnection, epoch: UInt64) throws -> MemberReport {
        guard let row = try connection.query("""
            SELECT pg_is_in_recovery(),
                   (SELECT system_identifier FROM pg_control_system()),
                   CASE WHEN pg_is_in_recovery() THEN COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
                        ELSE pg_current_wal_lsn() END,
                   pg_last_wal_replay_lsn(),
                   CASE WHEN pg_is_in_recovery()
                        THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
                        ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
                   COALESCE((SELECT status FROM pg_stat_wal_receiver), ''),
                   COALESCE((EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint, 0),
                   (SELECT latest_end_lsn FROM pg_stat_wal_receiver),
                   -- The newest timeline this node knows of: a standby's checkpoint timeline lags
                   -- behind a timeline switch it has already received (the history file is there).
                   COALESCE((SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir()
                             WHERE name ~ '^[0-9A-F]{8}[.]history$'), 0)
            """, timeout: Self.healthQueryTimeout).first, row.count == 9 else {
            throw PostgresError("unexpected answer to the health query")
        }
        let recovering = row[0] == "t"
        var report = MemberReport(
            role: recovering ? .replica : .primary, healthy: true,
            systemIdentifier: row[1].flatMap { UInt64($0) } ?? 0,
            timeline: max(row[4].flatMap { UInt32($0) } ?? 0, row[8].flatMap { UInt32($0) } ?? 0),
            receivedPosition: row[2].flatMap(LSN.init)?.value ?? 0,
            replayedPosition: row[3].flatMap(LSN.init)?.value ?? 0,
            streaming: row[5] == "streaming",
            lagMilliseconds: row[6].flatMap { Int64($0) }.map { UInt64(max(0, $0)) } ?? 0,
            epoch: epoch
        )
        report.upstreamPosition = row[7].flatMap(LSN.init)?.value ?? 0
        // Time since the last replayed commit grows on an idle primary too: a replica that has
        // replayed everything the primary reported is not behind.
        if recovering, report.upstreamPosition > 0, report.replayedPosition >= report.upstreamPosition { report.lagMilliseconds = 0 }
        return report
    }

    private func isPrimary(_ connection: PostgresConnection) throws -> Bool {
        try connection.value("SELECT pg_is_in_recovery()", timeout: Self.healthQueryTimeout) == "f"
    }

    private func problem(_ text: String) {
        failedChecks += 1
        if failingSince == nil { failingSince = .now }
        lastError = text
        if text != lastLoggedError {
            // Once the agent is leaving, PostgreSQL stopping is the plan, not a failure.
            let level: Logger.Level = leaving.load(ordering: .sequentiallyConsistent) ? .notice : .error
            logger.log(level: level, "PostgreSQL: \(text)")
            lastLoggedError = text
        }
    }

    /// The one place a report becomes the published status: whether the primary has given up,
    /// and when this replica last streamed.
    private func publish(_ report: MemberReport) {
        let givenUp = namedPrimary && failedChecks >= UInt32(settings.healthCheckFailures)
            && (failingSince.map { ContinuousClock.now - $0 >= .milliseconds(Int64(settings.restartTimeoutSeconds * 1_000)) } ?? false)
        if report.role == .replica, report.streaming { lastStreamedAt = .now } else if report.role != .replica { lastStreamedAt = nil }
        publish(LocalPostgresStatus(report: report, givenUp: givenUp, stoppedAtPosition: stoppedAtPosition, lastStreamedAt: lastStreamedAt))
    }

    private func publish(_ current: LocalPostgresStatus) {
        status.withLock { $0 = current }
        onStatus(current)
    }

    // MARK: Settings and connection strings

    private var localConninfo: String {
        "host=\(socketDirectory) port=\(local.postgresPort ?? 5432) user=\(settings.superuser) dbname=\(settings.database) connect_timeout=2"
    }

    private var passfileOption: String { settings.passfile.map { " passfile=\($0)" } ?? "" }

    func replicationConninfo(to node: NodeConfig) -> String {
        "host=\(node.host) port=\(node.postgresPort ?? 5432) user=\(settings.replicationUser) application_name=\(local.name) connect_timeout=2\(passfileOption)"
    }

    func superuserConninfo(to node: NodeConfig) -> String {
        "host=\(node.host) port=\(node.postgresPort ?? 5432) user=\(settings.superuser) dbname=\(settings.database) connect_timeout=5\(passfileOption)"
    }

    /// `pgquorum.conf` (the cluster's parameters and this node's replication source) and
    /// `pg_hba.conf` (the cluster's hosts), rewritten before every start.
    private func writeAgentSettings(_ server: PostgresServer, upstream source: NodeConfig?) throws {
        var lines = ["# Written by the pgquorum agent before every start; edit postgresql.parameters in the cluster config instead."]
        for (key, value) in settings.parameters.sorted(by: { $0.key < $1.key }) { lines.append("\(key) = '\(value)'") }
        lines.append("recovery_target_timeline = 'latest'")
        // The agent checks its standby over SQL.
        lines.append("hot_standby = 'on'")
        lines.append("wal_retrieve_retry_interval = '500ms'")
        if let source {
            lines.append("primary_conninfo = '\(replicationConninfo(to: source))'")
            lines.append("primary_slot_name = '\(Self.slotName(local.name))'")
        } else {
            lines.append("primary_conninfo = ''")
            lines.append("primary_slot_name = ''")
        }
        try server.writeFile("pgquorum.conf", lines.joined(separator: "\n") + "\n")
        try server.includeAgentSettings(file: "pgquorum.conf")
        let method = usesPasswords ? "scram-sha-256" : "trust"
        var hba = ["# Written by the pgquorum agent before every start.", "local all all trust"]
        for node in config.nodes {
            let address = Self.hbaAddress(node.host)
            hba.append("host replication \(settings.replicationUser) \(address) \(method)")
            hba.append("host all \(settings.superuser) \(address) \(method)")
        }
        hba += settings.hbaLines
        try server.writeFile("pg_hba.conf", hba.joined(separator: "\n") + "\n")
    }

    static func hbaAddress(_ host: String) -> String {
        if host.contains(":") { return host + "/128" }
        if host.split(separator: ".").count == 4, host.allSatisfy({ $0.isNumber || $0 == "." }) { return host + "/32" }
        return host
    }

    /// Passwords are in use when a passfile is configured or PGPASSWORD is set in the agent's
    /// environment (libpq reads both itself; the agent only sets the roles' passwords).
    var usesPasswords: Bool {
        settings.passfile != nil || !(ProcessInfo.processInfo.environment["PGPASSWORD"] ?? "").isEmpty
    }

    /// The password for `user`: its passfile line (`host:port:database:user:password`, `\:` and
    /// `\\` escaped), else PGPASSWORD.
    private func password(for user: String) -> String? {
        if let path = settings.passfile, let text = UserOwnedFile.read(path) {
            for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
                let fields = Self.passfileFields(String(line))
                if fields.count == 5, fields[3] == user || fields[3] == "*" { return fields[4] }
            }
        }
        let environment = ProcessInfo.processInfo.environment["PGPASSWORD"] ?? ""
        return environment.isEmpty ? nil : environment
    }

    static func passfileFields(_ line: String) -> [String] {
        var fields: [String] = [], current = "", escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":", fields.count < 4 {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        return fields + [current]
    }

    private func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
    private func identifier(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
}
