import ClusterState
import RaftCore
import RaftSimulation

/// The agent's replicated cluster state as a simulated application: entries are real cluster
/// commands (`CommandCodec`), applied as the agent applies them, and snapshots are the agent's
/// snapshots (`ClusterStateSnapshot`). A seed fails if a node restores a snapshot whose state
/// differs from the state other nodes reached by applying the same entries.
public struct ClusterStateApplication: SimulatedApplication {
    public private(set) var state: ClusterState

    public init?(snapshotData data: [UInt8]) {
        guard let state = try? ClusterStateSnapshot.decode(data) else { return nil }
        self.state = state
    }

    public mutating func apply(_ entry: Entry) {
        // Entries that are no command (the simulator's liveness markers) are skipped, as the
        // agent skips a command it cannot read: every node the same way.
        guard case .application(let bytes) = entry.payload, let command = try? CommandCodec.decode(bytes) else { return }
        state.apply(command, term: entry.term)
    }

    public func snapshotData() -> [UInt8] { ClusterStateSnapshot.encode(state) }

    /// FNV-1a over the snapshot's bytes: equal states encode equally.
    public var fingerprint: UInt64 {
        snapshotData().reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
    }

    /// What a leader proposes, from its own view as the agent's leader does: mostly the next
    /// promotion, position records and plans; now and then a stale one, which every node must
    /// refuse alike.
    public func proposal(_ number: UInt64) -> [UInt8] {
        let node = "node\(number % 5)"
        let command: ClusterState.Command
        switch number % 6 {
        case 0 where state.systemIdentifier == nil, 1 where state.systemIdentifier == nil:
            command = .bootstrap(systemIdentifier: 7_000 + number, primary: node, unixMilliseconds: number, timeline: 2)
        case 0, 1:
            command = .promote(node: node, epoch: state.epoch + 1, timeline: UInt32(state.epoch + 2), walPosition: number << 20,
                               reason: "failover \(number): 主数据中心 unreachable", unixMilliseconds: number)
        case 2, 3:
            command = .recordPrimaryPosition(epoch: state.epoch, walPosition: number << 20)
        case 4:
            command = .planPrimary(node: number % 4 == 0 ? nil : node, reason: "switchover \(number)", epoch: state.epoch, force: number % 3 == 0)
        default:
            // Stale: an epoch that is not the next one.
            command = .promote(node: node, epoch: state.epoch, timeline: 1, walPosition: 0, reason: "stale", unixMilliseconds: number)
        }
        return CommandCodec.encode(command)
    }
}
