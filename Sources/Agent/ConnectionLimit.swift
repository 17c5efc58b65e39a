import NIOCore
import Synchronization

/// A cap on the open connections of one listener. A connection beyond it is closed as soon as
/// it is accepted, before any TLS, so a flood of idle or slow clients cannot use up the agent's
/// file descriptors, which its Raft log, its peers and PostgreSQL need.
final class ConnectionLimit: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)
    private let refusals: RefusalLog

    init(limit: Int, refusals: RefusalLog) {
        self.limit = limit
        self.refusals = refusals
    }

    var openConnections: Int { open.load(ordering: .relaxed) }

    /// The handler that counts one connection (a new one for each channel).
    func handler() -> Handler { Handler(limit: self) }

    final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny
        private let limit: ConnectionLimit
        private var counted = false

        init(limit: ConnectionLimit) { self.limit = limit }

        func handlerAdded(context: ChannelHandlerContext) {
            counted = true
            let open = limit.open.add(1, ordering: .relaxed).newValue
            guard open > limit.limit else { return }
            let peer = context.remoteAddress.map { "\($0)" } ?? "an unknown address"
            limit.refusals.refused("\(limit.limit) connections are open already; closed the one from \(peer)")
            context.close(promise: nil)
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            guard counted else { return }
            counted = false
            limit.open.subtract(1, ordering: .relaxed)
        }
    }
}
