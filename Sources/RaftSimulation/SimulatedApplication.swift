import RaftCore

/// The application a simulation replicates: what each node applies, snapshots and restores.
/// The checker compares fingerprints between nodes after every applied index and after every
/// restored snapshot, so an application whose snapshot loses or changes anything fails a seed.
public protocol SimulatedApplication: Sendable {
    /// The state a snapshot holds (empty data: the state before any entry); nil when unreadable.
    init?(snapshotData: [UInt8])
    /// Applies a committed entry of any kind (no-ops and membership changes included).
    mutating func apply(_ entry: Entry)
    func snapshotData() -> [UInt8]
    /// Equal for equal states.
    var fingerprint: UInt64 { get }
    /// The payload of the `number`th client proposal, made by a leader in this state.
    func proposal(_ number: UInt64) -> [UInt8]
}

/// The default application: it folds every applied entry into a digest, so two nodes that
/// applied the same history hold the same digest, and a snapshot is just that digest.
public struct EntryDigest: SimulatedApplication {
    public private(set) var fingerprint: UInt64

    public init?(snapshotData data: [UInt8]) {
        fingerprint = data.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    public func snapshotData() -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: fingerprint >> (8 * UInt64($0))) } }

    public func proposal(_ number: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: number >> (8 * UInt64($0))) } }

    /// FNV-1a over the entry's index, term and payload.
    public mutating func apply(_ entry: Entry) {
        var hash = fingerprint ^ 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        func mix64(_ value: UInt64) { for shift in stride(from: 0, to: 64, by: 8) { mix(UInt8(truncatingIfNeeded: value >> UInt64(shift))) } }
        mix64(entry.index)
        mix64(entry.term)
        switch entry.payload {
        case .noop: mix(0)
        case .application(let bytes): mix(1); bytes.forEach(mix)
        case .membership(let change, _): mix(2); mix64(change.node.rawValue)
        }
        fingerprint = hash
    }
}
