import NIOCore
import NIOPosix

/// The agent's network threads. Peer links carry what keeps the cluster safe and available
/// (heartbeats, votes, reports, a hand-over's TimeoutNow) and get a thread of their own; the API
/// and the health port, whose clients anyone who reaches the port can multiply, use NIO's shared
/// group. A peer frame is then never queued behind a flood of API connections (the cores are
/// still shared).
enum AgentEventLoops {
    /// Peer links only. Two threads: a few peers' frames need little, but anyone who reaches the
    /// peer port can start TLS handshakes (up to 64 connections), and those must not hold every
    /// established link's heartbeats behind one thread. It lives as long as the process (one
    /// agent per process).
    static let peers: MultiThreadedEventLoopGroup = {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        // Named for `top -H` and `ps -L` before they serve anything.
        let named = group.makeIterator().map { $0.submit { DedicatedThreadExecutor.nameCurrentThread("pgquorum-peers") } }
        for future in named { _ = try? future.wait() }
        return group
    }()
}
