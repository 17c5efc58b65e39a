import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Added latency without `tc netem` (this kernel lacks it): inside a node's namespace, iptables
/// redirects new TCP connections to a delayed peer to this relay, which connects on to the real
/// destination and holds every chunk of bytes for `delay` before passing it on, in both
/// directions. Its own connections carry a firewall mark so they are not redirected again.
public enum DelayRelay {
    public struct Forward: Sendable, Equatable {
        public var listenHost: String
        public var listenPort: Int
        public var targetHost: String
        public var targetPort: Int

        public init(listenHost: String, listenPort: Int, targetHost: String, targetPort: Int) {
            self.listenHost = listenHost
            self.listenPort = listenPort
            self.targetHost = targetHost
            self.targetPort = targetPort
        }

        /// `LISTENHOST:PORT=TARGETHOST:PORT`.
        public init?(argument: String) {
            let parts = argument.split(separator: "=")
            guard parts.count == 2, let listen = Self.endpoint(parts[0]), let target = Self.endpoint(parts[1]) else { return nil }
            self.init(listenHost: listen.0, listenPort: listen.1, targetHost: target.0, targetPort: target.1)
        }

        public var argument: String { "\(listenHost):\(listenPort)=\(targetHost):\(targetPort)" }

        private static func endpoint(_ text: Substring) -> (String, Int)? {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else { return nil }
            return (String(text[..<colon]), port)
        }
    }

    /// The firewall mark on the relay's own outbound connections.
    public static let mark: Int32 = 0x7071

    /// Serves every forward until the process is killed.
    public static func run(forwards: [Forward], delay: Duration) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let hold = TimeAmount.nanoseconds(Int64(delay.components.seconds) * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)
        var servers: [any Channel] = []
        for forward in forwards {
            let server = try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { inbound in
                    ClientBootstrap(group: inbound.eventLoop)
                        .channelOption(ChannelOptions.socketOption(NIOBSDSocket.Option(rawValue: SO_MARK)), value: Int(mark))
                        .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                        .connectTimeout(.seconds(5))
                        .channelInitializer { outbound in
                            outbound.pipeline.addHandler(DelayedForwarder(peer: inbound, delay: hold))
                        }
                        .connect(host: forward.targetHost, port: forward.targetPort)
                        .flatMap { outbound in inbound.pipeline.addHandler(DelayedForwarder(peer: outbound, delay: hold)) }
                }
                .bind(host: forward.listenHost, port: forward.listenPort).get()
            servers.append(server)
        }
        for server in servers { try await server.closeFuture.get() }
    }
}

/// Passes what one side sends to the other side `delay` later, in order; a close travels with
/// the same delay.
private final class DelayedForwarder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let peer: any Channel
    private let delay: TimeAmount

    init(peer: any Channel, delay: TimeAmount) {
        self.peer = peer
        self.delay = delay
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        let peer = self.peer
        context.eventLoop.scheduleTask(in: delay) { peer.writeAndFlush(bytes, promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let peer = self.peer
        context.eventLoop.scheduleTask(in: delay) { peer.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
