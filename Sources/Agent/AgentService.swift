import ClusterConfig
import ClusterState
import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PeerTransport
import RaftCore
import RaftStorage
import ServiceLifecycle
import Synchronization

/// Why the agent could not start; one line each.
public struct AgentStartError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// `pgquorum agent`: one node of the cluster. Opens (or creates) the node's Raft storage, connects
/// to its peers, serves the operator API, and on graceful shutdown (SIGTERM) hands leadership to
/// another voter before it exits.
public final class AgentService: Service {
    private let config: ClusterConfig
    private let local: NodeConfig
    private let logger: Logger
    private let latest = SnapshotBox()

    public init(config: ClusterConfig, nodeName: String, logger: Logger) throws(AgentStartError) {
        guard let local = config.node(named: nodeName) else {
            let names = config.nodes.map(\.name).joined(separator: ", ")
            throw AgentStartError("node '\(nodeName)' is not in \(config.path) (its nodes: \(names))")
        }
        self.config = config
        self.local = local
        var logger = logger
        logger[metadataKey: "node"] = "\(local.name)"
        self.logger = logger
    }

    public func run() async throws {
        let lock = try lockDataDirectory()
        defer { close(lock) }
        let generation = try ClusterGeneration(dataDirectory: local.dataDirectory).recover(logger: logger)
        let storage = try openStorage(generation: generation)
        var options = config.timing.raftOptions
        options.randomSeed = UInt64.random(in: 1 ... .max)
        guard let durable = storage.recovered else { throw AgentStartError("storage recovered nothing after initialisation") }
        let node: RaftNode
        do {
            node = try RaftNode(id: local.id, options: options, restoring: durable)
        } catch {
            throw AgentStartError("cannot restore the Raft node from \(storage.directory): \(error)")
        }
        let clusterState: ClusterState
        do {
            clusterState = try ClusterStateSnapshot.decode(durable.snapshot.data)
        } catch {
            throw AgentStartError("cannot restore the cluster state from the snapshot in \(storage.directory): \(error)")
        }

        let (events, continuation) = AsyncStream.makeStream(of: AgentEvent.self)
        var postgres: PostgresManager?
        if !local.isWitness {
            let manager = PostgresManager(config: config, local: local, logger: logger) { continuation.yield(.localPostgres($0)) }
            try manager.prepare()
            postgres = manager
        }
        let identity: TransportIdentity
        do {
            identity = try TransportIdentity(cluster: config.cluster, node: local.name, directory: config.tlsDirectory)
        } catch {
            throw AgentStartError("cannot load this node's TLS files from \(config.tlsDirectory): \(error); check them with `pgquorum certs check --config \(config.path)`")
        }
        var peers: [PeerTransport.Peer] = []
        for peer in config.nodes where peer.name != local.name {
            let allowed = PeerSources.allowed(for: peer)
            if allowed?.isEmpty == true {
                logger.warning("cannot resolve a peer's host; its connections are refused until it resolves", metadata: ["peer": "\(peer.name)", "host": "\(peer.host)"])
            }
            peers.append(PeerTransport.Peer(id: peer.id, name: peer.name, host: peer.host, port: peer.agentPort, allowedSources: allowed))
        }
        let refusals = RefusalLog(logger: logger)
        let transportLogger = logger
        let notices = NoticeBox(MembershipNotice(generation: generation, voters: node.configuration.voters.map(\.rawValue)))
        var transportOptions = PeerTransport.Options()
        // Redial a lost peer at least once per election timeout: a restarted agent must not wait
        // long for its peers to reconnect.
        transportOptions.maximumBackoff = .milliseconds(Int64(config.timing.electionTimeoutMilliseconds))
        // Peers accept this node's certificate from its own address only: leave from the address
        // the agent listens on (unless this node is known to connect from elsewhere, behind NAT).
        transportOptions.leaveFromListenAddress = local.peerAddressCheck == .configuredHost
        let transport = PeerTransport(
            identity: identity, localID: local.id, peers: peers, group: AgentEventLoops.peers,
            options: transportOptions,
            onMessage: { continuation.yield(.message($0)) },
            onReport: { continuation.yield(.report(from: $0, $1)) },
            onNotice: { peer, payload in
                let notice: MembershipNotice
                do {
                    notice = try MembershipNoticeCodec.decode(payload)
                } catch {
                    transportLogger.warning("undecodable membership notice from a peer", metadata: ["peer": "\(peer)", "error": "\(error)"])
                    return nil
                }
                continuation.yield(.notice(from: peer, notice))
                // A peer of an older generation hears ours on its own connection, at once.
                let mine = notices.load()
                return notice.generation < mine.generation ? MembershipNoticeCodec.encode(mine) : nil
            },
            // Reconnect attempts repeat while a peer is down; the driver logs reachability changes.
            onEvent: { event in
                switch event {
                case .dialFailed, .connectionLost:
                    // Repeats while a peer is down; the Raft task logs reachability changes.
                    transportLogger.debug("peer link", metadata: ["event": "\(event)"])
                case .rejected:
                    refusals.refused("\(event)")
                }
            }
        )
        do {
            _ = try await transport.listen(host: local.host, port: local.agentPort)
        } catch {
            throw AgentStartError("cannot listen for peers on \(local.host):\(local.agentPort): \(error)")
        }
        // Peers named by host name: their addresses are looked up again every 10 s (DNS changes,
        // or a lookup that failed at start).
        let named = config.nodes.filter { $0.name != local.name && PeerSources.needsResolving($0) }
        if !named.isEmpty {
            Task.detached { [transport] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(10))
                    for peer in named {
                        // A lookup that fails now keeps the last answer (a DNS blip refuses nobody new).
                        let found = PeerSources.resolve(peer.host)
                        if !found.isEmpty { transport.setAllowedSources(found, for: peer.id) }
                    }
                }
            }
        }

        // Ticks fall on a grid with a random phase: agents started together would otherwise tick
        // in the same instants, and two that drew the same randomised election timeout would
        // both pass PreVote and split the vote (seen in `pgquorum-bench election` without it).
        let tickInterval = Duration.milliseconds(config.timing.heartbeatMilliseconds)
        let tickOrigin = ContinuousClock.now + .microseconds(Int64.random(in: 0..<Int64(config.timing.heartbeatMilliseconds) * 1_000))
        let latest = self.latest
        let systemd = SystemdNotifier()
        let cluster = config.cluster
        let driver = RaftDriver(node: node, clusterState: clusterState, storage: storage, transport: transport, config: config, local: local,
                                postgres: postgres, generation: generation, notices: notices, tickOrigin: tickOrigin, logger: logger,
                                publish: { snapshot in
                                    latest.store(snapshot)
                                    systemd.noticeJoined(snapshot, cluster: cluster)
                                })
        let reads = ReadConfirmations(limit: AgentService.waitingReadLimit) { respond in
            // After shutdown the Raft task reads no more events: answer at once.
            if case .terminated = continuation.yield(.confirmLeadership(respond)) { respond(false) }
        }
        let handle = AgentHandle(
            latest: { latest.load() },
            handOver: { target in
                await withCheckedContinuation { answer in
                    if case .terminated = continuation.yield(.handOverLeadership(to: target) { answer.resume(returning: $0) }) {
                        answer.resume(returning: .refused("the agent is shutting down"))
                    }
                }
            },
            confirmLeadership: { await reads.confirm() },
            movePrimary: { request in
                await withCheckedContinuation { answer in
                    if case .terminated = continuation.yield(.movePrimary(request) { answer.resume(returning: $0) }) {
                        answer.resume(returning: .refused("the agent is shutting down"))
                    }
                }
            }
        )
        let app = try makeAPI(handle: handle)
        let healthApp = local.healthPort.map { makeHealthAPI(handle: handle, port: $0) }
        let healthAddress = local.healthPort.map { "http://\(local.host):\($0)" }
        postgres?.start()
        logger.notice("agent started", metadata: [
            "listen": "\(local.host):\(local.agentPort)", "api": "https://\(local.host):\(local.apiPort)",
            "health_checks": "\(healthAddress ?? "off")",
            "data": "\(storage.directory)", "voters": "\(node.configuration.voters.map { id in self.config.node(withID: id)?.name ?? id.description }.sorted().joined(separator: ","))",
        ])

        let ticker = Task {
            var next = tickOrigin + tickInterval
            while !Task.isCancelled {
                try? await Task.sleep(until: next, clock: .continuous)
                continuation.yield(.tick)
                // The next grid point after now (skipping any missed while the process stood still).
                let elapsed = Int64((ContinuousClock.now - tickOrigin) / tickInterval)
                next = tickOrigin + tickInterval * Int(elapsed + 1)
            }
        }
        defer { ticker.cancel() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            // On a thread of its own: it blocks in fdatasync (see DedicatedThreadExecutor).
            group.addTask(executorPreference: DedicatedThreadExecutor(name: "pgquorum-raft")) { await driver.run(events: events) }
            let api = "\(local.host):\(local.apiPort)"
            group.addTask {
                do {
                    try await app.run()
                } catch {
                    throw AgentStartError("cannot serve the operator API on \(api): \(error)")
                }
            }
            if let healthApp {
                group.addTask {
                    do {
                        try await healthApp.run()
                    } catch {
                        throw AgentStartError("cannot serve the health checks on \(healthAddress ?? "") (health_port): \(error)")
                    }
                }
            }
            group.addTask { try? await gracefulShutdown() }
            // The API ends on SIGTERM/SIGINT (graceful shutdown) as the waiter does; an API that
            // fails to start throws here and the agent exits with its reason.
            try await group.next()
            logger.notice("shutting down")
            systemd.stopping()
            postgres?.beginShutdown()
            if latest.load()?.primaryOfCurrentTerm == true {
                // The primary leaves like a switchover: a clean stop, the best replica catches
                // up, then takes over; no acknowledged write is lost.
                let moved = await handle.movePrimary(PrimaryMoveRequest(
                    kind: .switchover, target: nil, reason: "the agent on \(local.name) is shutting down", requestedBy: local.name))
                switch moved {
                case .handedOver(let leader, _): logger.notice("primary handed over before exit", metadata: ["to": "\(leader)"])
                case .promoted, .notLeader: break
                case .refused(let why), .timedOut(let why): logger.warning("the primary could not be handed over cleanly", metadata: ["reason": "\(why)"])
                }
            }
            let handedOver = await withCheckedContinuation { answer in
                // A Raft task that has ended never answers: do not wait for it.
                if case .terminated = continuation.yield(.handOverLeadership(to: nil) { answer.resume(returning: $0) }) {
                    answer.resume(returning: .notLeader(leader: nil))
                }
            }
            switch handedOver {
            case .done, .notLeader: break
            case .refused, .timedOut: logger.warning("leadership was not handed over before exit")
            }
            // The Raft task ends with its stream; the API and the waiter end with the graceful
            // shutdown (cancelling them instead makes the HTTP server log errors).
            continuation.finish()
            ticker.cancel()
            try await group.waitForAll()
            if let postgres {
                // Blocking (a fast shutdown of PostgreSQL, bounded): off the concurrency pool.
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    Thread.detachNewThread {
                        postgres.stop()
                        done.resume()
                    }
                }
            }
            await transport.shutdown()
        }
        logger.notice("agent stopped")
    }

    /// Two agents on one node's state would each believe their own votes: an exclusive lock on
    /// `<data_dir>/agent.lock`, held for the life of the process (the kernel drops it on exit).
    private func lockDataDirectory() throws -> Int32 {
        do {
            // Parents the agent creates only need to be traversable: under root, PostgreSQL's
            // user must pass them on the way to <data_dir>/postgres (the leaf stays private).
            let parent = (local.dataDirectory as NSString).deletingLastPathComponent
            if !parent.isEmpty, !FileManager.default.fileExists(atPath: parent) {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o711])
            }
            try FileManager.default.createDirectory(atPath: local.dataDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw AgentStartError("cannot create the data directory \(local.dataDirectory): \(error.localizedDescription)")
        }
        let path = local.dataDirectory + "/agent.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw AgentStartError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw AgentStartError("another agent for node \(local.name) is already running on \(local.dataDirectory) (it holds \(path)); stop it first")
        }
        return descriptor
    }

    private func openStorage(generation: UInt64) throws -> RaftStorage {
        let directory = local.dataDirectory + "/raft"
        let storage: RaftStorage
        do {
            storage = try RaftStorage.open(directory: directory, segmentBytes: RaftStorage.agentSegmentBytes)
            if let torn = storage.tornTail {
                logger.warning("cut off a torn write at the end of the Raft log (never synced, so never acknowledged)",
                               metadata: ["file": "\(torn.file)", "offset": "\(torn.offset)", "bytes": "\(torn.bytes)"])
            }
            if storage.recovered == nil, generation > 0 {
                // After a forced recovery (this node's old state was moved aside): a new member
                // that the leader adds back.
                try storage.initialize(.joining)
                logger.notice("initialised new Raft storage to rejoin the cluster", metadata: ["directory": "\(directory)", "generation": "\(generation)"])
            } else if storage.recovered == nil {
                // A founding member: every node of the file is a voter from the start.
                let voters = Set(config.nodes.map(\.id))
                try storage.initialize(.bootstrap(Configuration(voters: voters)))
                logger.notice("initialised new Raft storage", metadata: ["directory": "\(directory)"])
            }
        } catch {
            throw AgentStartError("\(error) — see docs/storage.md, \"Recovering a node\"")
        }
        return storage
    }

    private func makeAPI(handle: AgentHandle) throws -> some ApplicationProtocol {
        var tls: TLSConfiguration
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(config.tlsDirectory + "/\(local.name).crt").map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: config.tlsDirectory + "/\(local.name).key", format: .pem)
            tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            tls.minimumTLSVersion = .tlsv12
            // A client certificate is asked for but not required: probes and load balancers read
            // without one; one that is presented must chain to the cluster CA, and mutating
            // endpoints require it.
            tls.certificateVerification = .optionalVerification
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(config.tlsDirectory + "/ca.crt"))
        } catch {
            throw AgentStartError("cannot load the API certificate from \(config.tlsDirectory): \(error)")
        }
        // A forwarded read presents this node's certificate (the leader may require one).
        let client = try? APIClient(tlsDirectory: config.tlsDirectory, identity: local.name)
        let limit = ConnectionLimit(limit: AgentService.connectionLimit, refusals: RefusalLog(logger: logger, subject: "API connection"))
        var apiLogger = logger
        // Hummingbird logs every request at info and below; operator actions are notices.
        apiLogger.logLevel = max(logger.logLevel, .notice)
        return Application(
            router: OperatorAPI.router(agent: handle, config: config, client: client),
            // A client that connects and then says nothing (no TLS handshake, no request) is
            // closed: open connections must not pile up until the agent runs out of descriptors.
            server: try .tls(.http1(configuration: .init(additionalChannelHandlers: [limit.handler()], idleTimeout: AgentService.apiIdleTimeout)),
                             tlsConfiguration: tls),
            configuration: .init(address: .hostname(local.host, port: local.apiPort), serverName: "pgquorum"),
            logger: apiLogger
        )
    }
}

extension AgentService {
    /// How long an API or health-check connection may stay silent before it is closed.
    static let apiIdleTimeout = TimeAmount.seconds(10)
    /// Open connections each of the API and the health port keep at most; together well below
    /// the usual 1,024 descriptors of a process (the package's unit allows 65,536).
    static let connectionLimit = 256
    /// Linearizable reads that may wait for the next ReadIndex round (`ReadConfirmations`).
    static let waitingReadLimit = 1_000

    /// The plain-HTTP listener of `health_port`: the load-balancer checks only, no TLS, so a
    /// load balancer configured for Patroni works unedited.
    fileprivate func makeHealthAPI(handle: AgentHandle, port: Int) -> some ApplicationProtocol {
        let limit = ConnectionLimit(limit: AgentService.connectionLimit, refusals: RefusalLog(logger: logger, subject: "health-check connection"))
        var healthLogger = logger
        healthLogger.logLevel = max(logger.logLevel, .notice)
        return Application(
            router: OperatorAPI.healthRouter(agent: handle),
            server: .http1(configuration: .init(additionalChannelHandlers: [limit.handler()], idleTimeout: AgentService.apiIdleTimeout)),
            configuration: .init(address: .hostname(local.host, port: port), serverName: "pgquorum"),
            logger: healthLogger
        )
    }
}

/// The latest published snapshot, shared between the Raft task (writer) and the API (readers).
final class SnapshotBox: Sendable {
    private let value = Mutex<AgentSnapshot?>(nil)
    func store(_ snapshot: AgentSnapshot) { value.withLock { $0 = snapshot } }
    func load() -> AgentSnapshot? { value.withLock { $0 } }
}
