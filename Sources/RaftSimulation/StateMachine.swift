import RaftCore

/// A simulated application: it folds every applied entry into a digest, so two nodes that
/// applied the same history hold the same digest, and a snapshot is just that digest.
struct StateMachine {
    private(set) var appliedIndex: LogIndex
    private(set) var digest: UInt64

    init(restoredFrom snapshot: Snapshot) {
        appliedIndex = snapshot.metadata.index
        digest = Self.decode(snapshot.data)
    }

    func snapshotData() -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: digest >> (8 * UInt64($0))) } }

    func verifyRestored(_ snapshot: Snapshot, checker: InvariantChecker, node: NodeID) -> String? {
        checker.verifySnapshot(index: snapshot.metadata.index, digest: Self.decode(snapshot.data), node: node)
    }

    mutating func restore(_ snapshot: Snapshot, checker: inout InvariantChecker, node: NodeID) -> String? {
        appliedIndex = snapshot.metadata.index
        digest = Self.decode(snapshot.data)
        return checker.verifySnapshot(index: appliedIndex, digest: digest, node: node)
    }

    mutating func apply(_ entry: Entry, checker: inout InvariantChecker, node: NodeID) -> String? {
        guard entry.index == appliedIndex + 1 else {
            return "\(node) applied entry \(entry.index) right after \(appliedIndex)"
        }
        appliedIndex = entry.index
        digest = Self.fold(digest, entry)
        return checker.applied(entry, digest: digest, node: node)
    }

    private static func decode(_ data: [UInt8]) -> UInt64 {
        data.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// FNV-1a over the entry's index, term and payload.
    private static func fold(_ digest: UInt64, _ entry: Entry) -> UInt64 {
        var hash = digest ^ 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        func mix64(_ value: UInt64) { for shift in stride(from: 0, to: 64, by: 8) { mix(UInt8(truncatingIfNeeded: value >> UInt64(shift))) } }
        mix64(entry.index)
        mix64(entry.term)
        switch entry.payload {
        case .noop: mix(0)
        case .application(let bytes): mix(1); bytes.forEach(mix)
        case .membership(let change, _): mix(2); mix64(change.node.rawValue)
        }
        return hash
    }
}
