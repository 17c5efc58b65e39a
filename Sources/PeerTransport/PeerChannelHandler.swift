import NIOCore
import NIOSSL
import NIOTLS
import RaftCodec
import RaftCore

/// The last handler of every peer connection, inbound or outbound: checks the peer's identity
/// once TLS is up, then turns bytes into frames and Raft messages. Any violation closes the
/// connection with a reason.
final class PeerChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Callbacks: Sendable {
        /// The peer proved to be `node` (the connection may carry messages now).
        var authenticated: @Sendable (_ node: NodeID, _ channel: Channel) -> Void
        var message: @Sendable (Message) -> Void
        var pong: @Sendable (_ from: NodeID, _ payload: [UInt8]) -> Void
        var report: @Sendable (_ from: NodeID, _ payload: [UInt8]) -> Void
        /// A notice from the peer; a payload returned is written back on the same connection (so
        /// a peer that dialled us hears our answer before our own dial to it succeeds).
        var notice: @Sendable (_ from: NodeID, _ payload: [UInt8]) -> [UInt8]?
        /// The wire version of a frame the peer sent (it speaks at least that).
        var version: @Sendable (_ from: NodeID, _ version: UInt16) -> Void
        var rejected: @Sendable (_ reason: String) -> Void
        /// An authenticated connection failed (reset, unclean TLS shutdown): not a protocol breach.
        var lost: @Sendable (_ reason: String) -> Void
    }

    private let cluster: String
    private let localID: NodeID
    private let members: [String: NodeID]
    /// Where each peer may connect from (absent: anywhere); checked on inbound connections.
    private let allowedSources: [NodeID: Set<String>]
    /// For an outbound connection: the node we dialled. Inbound connections accept any member.
    private let expected: NodeID?
    private let callbacks: Callbacks
    private var decoder: FrameDecoder
    private var peer: NodeID?
    private var closing = false
    private var lastVersion: UInt16 = 0
    private let handshakeTimeout: TimeAmount
    private var handshakeDeadline: Scheduled<Void>?

    init(cluster: String, localID: NodeID, members: [String: NodeID], allowedSources: [NodeID: Set<String>] = [:],
         expected: NodeID?, maximumFrame: Int, handshakeTimeout: TimeAmount, callbacks: Callbacks) {
        self.allowedSources = allowedSources
        self.handshakeTimeout = handshakeTimeout
        self.cluster = cluster
        self.localID = localID
        self.members = members
        self.expected = expected
        self.callbacks = callbacks
        self.decoder = FrameDecoder(maximumLength: maximumFrame)
    }

    /// A peer must finish the TLS handshake and prove its identity within the handshake timeout.
    func channelActive(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        handshakeDeadline = context.eventLoop.scheduleTask(in: handshakeTimeout) {
            let (handler, context) = bound.value
            if handler.peer == nil { handler.reject(context: context, "no authenticated TLS handshake within the handshake timeout") }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeDeadline?.cancel()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            authenticate(context: context)
        } else if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            reject(context: context, "peer sent nothing within the idle timeout")
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func authenticate(context: ChannelHandlerContext) {
        guard let tls = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self),
              let certificate = tls.peerCertificate, let der = try? certificate.toDERBytes() else {
            return reject(context: context, "peer presented no certificate")
        }
        guard let name = PeerIdentity.node(inCertificateDER: der, cluster: cluster) else {
            if case .operator(let name)? = PeerIdentity.subject(inCertificateDER: der, cluster: cluster) {
                return reject(context: context, "peer presented operator \(name)'s certificate; the peer port takes node certificates only")
            }
            return reject(context: context, "peer certificate names no node of cluster \(cluster)")
        }
        guard let id = members[name], id != localID else {
            return reject(context: context, "peer certificate names \(name), not a member of this cluster")
        }
        if let expected, expected != id {
            return reject(context: context, "dialled \(expected) but its certificate names \(name)")
        }
        // A key copied off a node must not work from another machine: an inbound connection
        // presenting a node's certificate must come from that node's address.
        if expected == nil, let allowed = allowedSources[id] {
            let source = context.channel.remoteAddress?.ipAddress ?? "an unknown address"
            guard allowed.contains(source) else {
                let expectedText = allowed.sorted().joined(separator: ", ")
                return reject(context: context, "certificate of \(name) presented from \(source), not from its address (\(expectedText)); behind NAT, list the address in that node's tags.peer_address_check")
            }
        }
        peer = id
        handshakeDeadline?.cancel()
        callbacks.authenticated(id, context.channel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        var buffer = unwrapInboundIn(data)
        guard let peer else { return reject(context: context, "data before the peer was authenticated") }
        decoder.append(buffer.readBytes(length: buffer.readableBytes) ?? [])
        do {
            while let frame = try decoder.next() {
                if frame.version != lastVersion {
                    lastVersion = frame.version
                    callbacks.version(peer, frame.version)
                }
                switch frame.type {
                case .raft:
                    let message: Message
                    do {
                        message = try MessageCodec.decode(frame.payload)
                    } catch {
                        return reject(context: context, "undecodable Raft message: \(error)")
                    }
                    guard message.from == peer, message.to == localID else {
                        return reject(context: context, "message from \(message.from) to \(message.to) on the connection of \(peer)")
                    }
                    callbacks.message(message)
                case .ping:
                    let pong = Frame(type: .pong, payload: frame.payload).encoded()
                    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: pong)), promise: nil)
                case .pong:
                    callbacks.pong(peer, frame.payload)
                case .report:
                    callbacks.report(peer, frame.payload)
                case .notice:
                    if let answer = callbacks.notice(peer, frame.payload) {
                        let bytes = Frame(type: .notice, payload: answer).encoded()
                        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
                    }
                }
            }
        } catch {
            reject(context: context, "\(error)")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let peer, !closing else { return reject(context: context, "\(error)") }
        closing = true
        let name = members.first { $0.value == peer }?.key ?? "\(peer)"
        callbacks.lost("connection of \(name) lost: \(error)")
        context.close(promise: nil)
    }

    private func reject(context: ChannelHandlerContext, _ reason: String) {
        guard !closing else { return }
        closing = true
        callbacks.rejected("\(context.channel.remoteAddress.map { "\($0)" } ?? "peer"): \(reason)")
        context.close(promise: nil)
    }
}
