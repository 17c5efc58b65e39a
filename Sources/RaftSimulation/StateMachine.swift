import RaftCore

/// One node's copy of the simulated application, and the index it has applied up to.
struct StateMachine {
    private(set) var appliedIndex: LogIndex
    private var application: any SimulatedApplication

    /// Nil when the application cannot read the snapshot.
    init?(restoredFrom snapshot: Snapshot, as kind: any SimulatedApplication.Type) {
        guard let application = kind.init(snapshotData: snapshot.data) else { return nil }
        appliedIndex = snapshot.metadata.index
        self.application = application
    }

    func snapshotData() -> [UInt8] { application.snapshotData() }

    func proposal(_ number: UInt64) -> [UInt8] { application.proposal(number) }

    func verifyRestored(_ snapshot: Snapshot, checker: InvariantChecker, node: NodeID) -> String? {
        checker.verifySnapshot(index: snapshot.metadata.index, digest: application.fingerprint, node: node)
    }

    mutating func restore(_ snapshot: Snapshot, checker: inout InvariantChecker, node: NodeID) -> String? {
        guard let restored = type(of: application).init(snapshotData: snapshot.data) else {
            return "\(node) cannot read the snapshot at \(snapshot.metadata.index)"
        }
        appliedIndex = snapshot.metadata.index
        application = restored
        return checker.verifySnapshot(index: appliedIndex, digest: application.fingerprint, node: node)
    }

    mutating func apply(_ entry: Entry, checker: inout InvariantChecker, node: NodeID) -> String? {
        guard entry.index == appliedIndex + 1 else {
            return "\(node) applied entry \(entry.index) right after \(appliedIndex)"
        }
        appliedIndex = entry.index
        application.apply(entry)
        return checker.applied(entry, digest: application.fingerprint, node: node)
    }
}
