import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RaftCodec
import RaftCore
import Synchronization

/// Mutual-TLS connections between agents. Each node dials every peer for the messages it sends
/// to it and accepts connections for the messages it receives. Until the connection is up,
/// outbound messages wait in a bounded queue per peer (the oldest are dropped when it is full);
/// once it is up, messages are dropped while the connection holds more than its high-water mark
/// unsent (a peer that does not read). Raft retries, so a slow or absent peer never delays the
/// others or grows memory; a lost connection is redialled with jittered exponential backoff.
public final class PeerTransport: Sendable {
    public struct Peer: Sendable {
        public var id: NodeID
        public var name: String
        public var host: String
        public var port: Int
        /// The source addresses this peer may connect from (its certificate is refused from any
        /// other); nil: any address.
        public var allowedSources: Set<String>?

        public init(id: NodeID, name: String, host: String, port: Int, allowedSources: Set<String>? = nil) {
            self.id = id
            self.name = name
            self.host = host
            self.port = port
            self.allowedSources = allowedSources
        }
    }

    public struct Options: Sendable {
        public var maximumFrame = Frame.defaultMaximumLength
        public var queueLimit = 1_024
        public var handshakeTimeout = TimeAmount.seconds(5)
        /// A connection that carries nothing (not even a ping) for this long is closed.
        public var idleTimeout = TimeAmount.seconds(30)
        public var minimumBackoff = TimeAmount.milliseconds(50)
        public var maximumBackoff = TimeAmount.seconds(5)
        /// Inbound connections open at once at most (peers need one each); more are closed at
        /// accept, before TLS, so strangers cannot use up the agent's descriptors.
        public var inboundLimit = 64
        /// The local address outbound connections leave from (this node's own address, which its
        /// peers check); nil: the address `listen` bound, with `leaveFromListenAddress`, else
        /// whatever the kernel picks.
        public var sourceAddress: String?
        public var leaveFromListenAddress = false
        public init() {}
    }

    /// Inbound connections open now (see `Options.inboundLimit`).
    private let inbound = Atomic<Int>(0)

    private struct Outbound {
        var queue: [[UInt8]] = []
        var channel: Channel?
        var connecting = false
        var failures = 0
        var dropped = 0
        var connectedAt: ContinuousClock.Instant?
    }

    private struct State {
        var outbound: [NodeID: Outbound] = [:]
        var serverChannel: Channel?
        var rtt: [NodeID: Duration] = [:]
        var lastPong: [NodeID: ContinuousClock.Instant] = [:]
        /// The highest wire version seen from each peer.
        var versions: [NodeID: UInt16] = [:]
        /// Where each peer may connect from (absent: anywhere; empty: nowhere, for now).
        var allowedSources: [NodeID: Set<String>] = [:]
        var stopped = false
    }

    private let identity: TransportIdentity
    private let localID: NodeID
    private let peers: [NodeID: Peer]
    private let members: [String: NodeID]
    private let group: EventLoopGroup
    private let options: Options
    private let onMessage: @Sendable (Message) -> Void
    private let onReport: @Sendable (NodeID, [UInt8]) -> Void
    private let onNotice: @Sendable (NodeID, [UInt8]) -> [UInt8]?
    private let onEvent: @Sendable (PeerEvent) -> Void
    private let state = NIOLockedValueBox(State())

    public init(identity: TransportIdentity, localID: NodeID, peers: [Peer], group: EventLoopGroup,
                options: Options = Options(), onMessage: @escaping @Sendable (Message) -> Void,
                onReport: @escaping @Sendable (NodeID, [UInt8]) -> Void = { _, _ in },
                onNotice: @escaping @Sendable (NodeID, [UInt8]) -> [UInt8]? = { _, _ in nil },
                onEvent: @escaping @Sendable (PeerEvent) -> Void = { _ in }) {
        self.identity = identity
        self.localID = localID
        self.peers = Dictionary(uniqueKeysWithValues: peers.map { ($0.id, $0) })
        var members = Dictionary(uniqueKeysWithValues: peers.map { ($0.name, $0.id) })
        members[identity.node] = localID
        self.members = members
        let sources = self.peers.compactMapValues(\.allowedSources)
        state.withLockedValue { $0.allowedSources = sources }
        self.group = group
        self.options = options
        self.onMessage = onMessage
        self.onReport = onReport
        self.onNotice = onNotice
        self.onEvent = onEvent
    }

    /// TCP_THIN_LINEAR_TIMEOUTS: a thin stream (a few segments in flight, as heartbeats are)
    /// retransmits at a steady interval instead of doubling it each time. After a short link blip
    /// the doubled timeouts kept a connection silent for up to a second after the link was back,
    /// long enough for the leader's lease to lapse and for a follower to call an election.
    static let linearRetransmissions = ChannelOptions.Types.SocketOption(level: .init(rawValue: CInt(IPPROTO_TCP)), name: .init(rawValue: 16))

    /// TCP_RTO_MIN_US (Linux 6.15): the shortest retransmission timeout, 200 ms by default.
    /// Even with linear timeouts, a frame lost in a blip waited at least 200 ms after the link
    /// was back; with the blip and a heartbeat that reached a follower's election timeout (one
    /// 700 ms blip in five trials of `flapping` cost an election and a failover). A timeout of
    /// 20 ms only bounds it from below: on a long link TCP's own estimate (round trip plus
    /// variance) still rules. Older kernels refuse the option; the connection goes on without.
    static let minimumRetransmissionTimeout = ChannelOptions.Types.SocketOption(level: .init(rawValue: CInt(IPPROTO_TCP)), name: .init(rawValue: 45))
    static let minimumRetransmissionMicroseconds = 20_000
    /// TCP_DELACK_MAX_US (Linux 6.15): the longest an acknowledgement waits to ride on data,
    /// 200 ms by default (and at least 40 ms in practice). A one-way frame (a report, a notice)
    /// would otherwise wait for its acknowledgement longer than the sender's 20 ms timeout and be
    /// sent again for nothing.
    static let maximumAcknowledgementDelay = ChannelOptions.Types.SocketOption(level: .init(rawValue: CInt(IPPROTO_TCP)), name: .init(rawValue: 46))
    static let maximumAcknowledgementDelayMicroseconds = 5_000

    /// Starts accepting peer connections; returns the bound port (useful with port 0).
    public func listen(host: String, port: Int) async throws -> Int {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // Raft messages are small and latency-bound: no Nagle delay.
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(Self.linearRetransmissions, value: 1)
            .childChannelInitializer { [self] channel in
                let open = inbound.add(1, ordering: .relaxed).newValue
                channel.closeFuture.whenComplete { _ in self.inbound.subtract(1, ordering: .relaxed) }
                guard open <= options.inboundLimit else {
                    onEvent(.rejected("\(options.inboundLimit) inbound connections are open already; closed the one from \(channel.remoteAddress.map { "\($0)" } ?? "an unknown address")"))
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try self.installHandlers(on: channel, expected: nil, tls: NIOSSLServerHandler(context: identity.serverContext))
                }
            }
            .bind(host: host, port: port).get()
        // Accepted connections inherit it from the listener before their handshake's first
        // round-trip sample (set on the child later, it would decay to 20 ms only slowly).
        _ = try? await channel.setOption(Self.minimumRetransmissionTimeout, value: Self.minimumRetransmissionMicroseconds).get()
        _ = try? await channel.setOption(Self.maximumAcknowledgementDelay, value: Self.maximumAcknowledgementDelayMicroseconds).get()
        state.withLockedValue { $0.serverChannel = channel }
        return channel.localAddress?.port ?? port
    }

    /// Queues `message` for its destination and makes sure a connection is on its way.
    public func send(_ message: Message) {
        guard peers[message.to] != nil else { return }
        let bytes = Frame(type: .raft, payload: MessageCodec.encode(message)).encoded()
        enqueue(bytes, to: message.to)
    }

    /// Sends a ping whose pong updates the peer's round-trip time.
    public func ping(_ peer: NodeID) {
        let now = ContinuousClock.now
        let stamp = withUnsafeBytes(of: now) { Array($0) }
        enqueue(Frame(type: .ping, payload: stamp).encoded(), to: peer)
    }

    /// Sends an agent report (`Frame.FrameType.report`) to `peer`, if it has shown that it speaks
    /// wire version 2 or later (an older agent would drop the connection on the unknown frame).
    /// Returns false when the report was not sent for that reason.
    @discardableResult
    public func sendReport(_ payload: [UInt8], to peer: NodeID) -> Bool {
        guard peers[peer] != nil, (state.withLockedValue { $0.versions[peer] } ?? 0) >= 2 else { return false }
        enqueue(Frame(type: .report, payload: payload).encoded(), to: peer)
        return true
    }

    /// Sends an agent notice (`Frame.FrameType.notice`) to `peer`. Safe towards any version: a
    /// reader older than wire version 3 skips the frame.
    public func sendNotice(_ payload: [UInt8], to peer: NodeID) {
        guard peers[peer] != nil else { return }
        enqueue(Frame(type: .notice, payload: payload).encoded(), to: peer)
    }

    /// The highest wire version `peer` has used towards this node (nil: not heard from yet).
    public func wireVersion(of peer: NodeID) -> UInt16? { state.withLockedValue { $0.versions[peer] } }

    public func roundTripTime(of peer: NodeID) -> Duration? { state.withLockedValue { $0.rtt[peer] } }

    /// When the peer last answered a ping: proof it is alive and reachable even when no Raft
    /// traffic flows between the two (two followers).
    public func lastPong(from peer: NodeID) -> ContinuousClock.Instant? { state.withLockedValue { $0.lastPong[peer] } }

    /// Messages dropped so far because the peer's queue was full or its connection took no more.
    public func droppedMessages(to peer: NodeID) -> Int { state.withLockedValue { $0.outbound[peer]?.dropped ?? 0 } }

    public func shutdown() async {
        let channels = state.withLockedValue { state -> [Channel] in
            state.stopped = true
            return [state.serverChannel].compactMap { $0 } + state.outbound.values.compactMap(\.channel)
        }
        for channel in channels { try? await channel.close() }
    }

    // MARK: - Outbound

    private func enqueue(_ bytes: [UInt8], to peer: NodeID) {
        let (channel, dial) = state.withLockedValue { state -> (Channel?, Bool) in
            guard !state.stopped else { return (nil, false) }
            var outbound = state.outbound[peer] ?? Outbound()
            defer { state.outbound[peer] = outbound }
            if let channel = outbound.channel {
                // A peer that does not read (stalled, or a slow link) must not make its
                // connection buffer without bound: past NIO's high-water mark (64 KiB by
                // default) messages are dropped, as over a lossy network; Raft retries.
                guard channel.isWritable else {
                    outbound.dropped += 1
                    return (nil, false)
                }
                return (channel, false)
            }
            outbound.queue.append(bytes)
            if outbound.queue.count > options.queueLimit {
                outbound.queue.removeFirst(outbound.queue.count - options.queueLimit)
                outbound.dropped += 1
            }
            guard !outbound.connecting else { return (nil, false) }
            outbound.connecting = true
            return (nil, true)
        }
        if let channel {
            channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
        } else if dial {
            connect(to: peer)
        }
    }

    private func connect(to id: NodeID) {
        guard let peer = peers[id] else { return }
        var bootstrap = ClientBootstrap(group: group)
        let listening = options.leaveFromListenAddress ? state.withLockedValue { $0.serverChannel?.localAddress?.ipAddress } : nil
        if let source = options.sourceAddress ?? listening, let address = try? SocketAddress(ipAddress: source, port: 0) {
            bootstrap = bootstrap.bind(to: address)
        }
        let connection = bootstrap
            .connectTimeout(options.handshakeTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelOption(Self.linearRetransmissions, value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.installHandlers(on: channel, expected: id,
                                             tls: NIOSSLClientHandler(context: identity.clientContext, serverHostname: nil))
                }
            }
            .connect(host: peer.host, port: peer.port)
        connection.whenFailure { [self] error in
            onEvent(.dialFailed("connecting to \(peer.name) at \(peer.host):\(peer.port) failed: \(error)"))
            connectionLost(id)
        }
        connection.whenSuccess { [self] channel in
            // Nothing is written before the peer proves its identity (see `authenticated`); the
            // channel handler closes a connection whose handshake does not finish in time.
            channel.closeFuture.whenComplete { _ in self.connectionLost(id, channel: channel) }
        }
    }

    private func authenticated(_ id: NodeID, channel: Channel, outbound: Bool) {
        guard outbound else { return }
        let queued = state.withLockedValue { state -> [[UInt8]] in
            var entry = state.outbound[id] ?? Outbound()
            entry.channel = channel
            entry.connecting = false
            entry.connectedAt = .now
            let queued = entry.queue
            entry.queue = []
            state.outbound[id] = entry
            return queued
        }
        for bytes in queued { channel.write(channel.allocator.buffer(bytes: bytes), promise: nil) }
        channel.flush()
    }

    private func connectionLost(_ id: NodeID, channel: Channel? = nil) {
        let delay = state.withLockedValue { state -> TimeAmount? in
            guard !state.stopped, var entry = state.outbound[id] else { return nil }
            if let channel, let current = entry.channel, current !== channel { return nil }
            entry.channel = nil
            // A connection that lasted resets the backoff; one dropped at once (a peer that
            // rejects us after the handshake) keeps backing off.
            if let since = entry.connectedAt, ContinuousClock.now - since > .seconds(1) { entry.failures = 0 }
            entry.connectedAt = nil
            entry.failures += 1
            // Jittered exponential backoff: uniform in [base/2, base].
            let base = min(options.maximumBackoff.nanoseconds,
                           options.minimumBackoff.nanoseconds << Int64(min(entry.failures, 20)))
            entry.connecting = true
            state.outbound[id] = entry
            return .nanoseconds(Int64.random(in: (base / 2)...max(base / 2, base)))
        }
        guard let delay else { return }
        group.next().scheduleTask(in: delay) { self.connect(to: id) }
    }

    /// Replaces where `peer` may connect from (a host name resolved again); nil: anywhere.
    /// Connections already authenticated stay.
    public func setAllowedSources(_ sources: Set<String>?, for peer: NodeID) {
        state.withLockedValue { $0.allowedSources[peer] = sources }
    }

    // MARK: - Pipeline

    private func installHandlers(on channel: Channel, expected: NodeID?, tls: NIOSSLHandler) throws {
        // Before the dialling end's SYN (see minimumRetransmissionTimeout).
        _ = try? channel.syncOptions?.setOption(Self.minimumRetransmissionTimeout, value: Self.minimumRetransmissionMicroseconds)
        _ = try? channel.syncOptions?.setOption(Self.maximumAcknowledgementDelay, value: Self.maximumAcknowledgementDelayMicroseconds)
        let callbacks = PeerChannelHandler.Callbacks(
            authenticated: { [self] id, channel in authenticated(id, channel: channel, outbound: expected != nil) },
            message: onMessage,
            pong: { [self] id, payload in
                guard payload.count == MemoryLayout<ContinuousClock.Instant>.size else { return }
                let sent = payload.withUnsafeBytes { $0.loadUnaligned(as: ContinuousClock.Instant.self) }
                let now = ContinuousClock.now
                state.withLockedValue {
                    $0.rtt[id] = now - sent
                    $0.lastPong[id] = now
                }
            },
            report: onReport,
            notice: onNotice,
            version: { [self] id, version in
                state.withLockedValue { $0.versions[id] = max($0.versions[id] ?? 0, version) }
            },
            rejected: { [onEvent] in onEvent(.rejected($0)) },
            lost: { [onEvent] in onEvent(.connectionLost($0)) }
        )
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(tls)
        try sync.addHandler(IdleStateHandler(readTimeout: options.idleTimeout))
        try sync.addHandler(PeerChannelHandler(cluster: identity.cluster, localID: localID, members: members,
                                               allowedSources: state.withLockedValue { $0.allowedSources },
                                               expected: expected, maximumFrame: options.maximumFrame,
                                               handshakeTimeout: options.handshakeTimeout, callbacks: callbacks))
    }
}

/// Something that happened on a peer link, for the agent's log.
public enum PeerEvent: Sendable, Equatable, CustomStringConvertible {
    /// Dialling a peer failed (it is down or unreachable); retried with backoff.
    case dialFailed(String)
    /// An authenticated connection ended (the peer stopped, or the network broke it).
    case connectionLost(String)
    /// A connection was refused: TLS or identity check failed, or the peer broke the protocol.
    case rejected(String)

    public var description: String {
        switch self {
        case .dialFailed(let text), .connectionLost(let text), .rejected(let text): text
        }
    }
}
