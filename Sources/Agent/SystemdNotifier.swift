import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Tells systemd how the agent is doing (`Type=notify` units): `READY=1` once the agent has
/// joined the cluster, `STOPPING=1` when it begins to shut down, and a `STATUS=` line with
/// each. Datagrams to `$NOTIFY_SOCKET`; nothing at all when the agent was not started by
/// systemd (the variable is unset).
final class SystemdNotifier: Sendable {
    private let socketPath: String?
    /// The last `STATUS=` sent (nil: not ready yet).
    private let status = Mutex<String?>(nil)

    /// Reads `$NOTIFY_SOCKET` and removes it from the environment, so that PostgreSQL (a child)
    /// does not talk to systemd in the agent's name (`NotifyAccess=main` would refuse it).
    init() {
        socketPath = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        unsetenv("NOTIFY_SOCKET")
    }

    /// `READY=1` once the node knows a leader and has applied what it committed, as a member;
    /// after that, a new `STATUS=` line whenever the leader or the term changes.
    func noticeJoined(_ snapshot: AgentSnapshot, cluster: String) {
        guard socketPath != nil else { return }
        let line = snapshot.view.leader.map { "member of cluster \(cluster); leader \($0), term \(snapshot.view.term)" }
            ?? "member of cluster \(cluster); no leader known (term \(snapshot.view.term))"
        status.withLock { last in
            if last == nil {
                guard snapshot.hasJoinedCluster, send("READY=1\nSTATUS=" + line) else { return }
                last = line
            } else if last != line, send("STATUS=" + line) {
                last = line
            }
        }
    }

    func stopping() {
        send("STOPPING=1\nSTATUS=shutting down: handing over the primary and the leadership if this node holds them")
    }

    @discardableResult
    func send(_ message: String) -> Bool {
        guard let socketPath else { return false }
        // An abstract socket is written with a leading '@' and addressed with a leading NUL.
        var pathBytes = Array(socketPath.utf8)
        if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count)
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(descriptor, bytes, bytes.count, 0, $0, length) }
        }
        return sent == bytes.count
    }
}

extension AgentSnapshot {
    /// The node knows a leader, is in the membership, and has applied everything it knows
    /// committed: it has joined the cluster (systemd readiness).
    var hasJoinedCluster: Bool {
        view.leader != nil && appliedIndex >= view.commitIndex && role != "not a member"
            && view.members.contains { $0.name == view.answeredBy && $0.role != "not a member" && $0.role != "learner" }
    }
}
