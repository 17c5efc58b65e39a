import NIOCore
import NIOPosix

/// The agent's network threads. Peer links carry what keeps the cluster safe and available
/// (heartbeats, votes, reports, a hand-over's TimeoutNow) and get a thread of their own; the API
/// and the health port, whose clients anyone who reaches the port can multiply, use NIO's shared
/// group. A flood of connections on the API then never queues a peer frame behind it.
enum AgentEventLoops {
    /// Peer links only: one thread is plenty for a few peers' frames. It lives as long as the
    /// process (one agent per process).
    static let peers: MultiThreadedEventLoopGroup = {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Named for `top -H` and `ps -L` before it serves anything.
        _ = try? group.next().submit { DedicatedThreadExecutor.nameCurrentThread("pgquorum-peers") }.wait()
        return group
    }()
}
