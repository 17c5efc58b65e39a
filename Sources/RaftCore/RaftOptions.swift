/// The knobs of one Raft node, in ticks (the agent picks the tick length, 100 ms by default for
/// heartbeats). Defaults follow etcd-io/raft: heartbeat every tick, election timeout of 10 ticks
/// randomised into [10, 20).
public struct RaftOptions: Sendable, Equatable {
    public var heartbeatTicks: Int = 1
    /// The minimum election timeout; each node waits a random timeout in [electionTicks, 2×).
    public var electionTicks: Int = 10
    /// How long after a heartbeat round starts a quorum's acknowledgement of it keeps the leader
    /// lease valid. A follower refuses votes for `electionTicks` after hearing from the leader, and
    /// its tick may fire just after the message arrives, so only `electionTicks - 1` whole ticks
    /// are guaranteed; `leaseTicks <= electionTicks - 2` keeps one more tick in hand, and the
    /// default (`electionTicks - 3`) one more again for clocks that run at different rates
    /// (20% of a 1 s election timeout).
    public var leaseTicks: Int = 7
    /// Appends in flight to one follower before the leader waits for acknowledgements.
    public var maxInflightAppends: Int = 256
    /// Entries in one append message.
    public var maxEntriesPerAppend: Int = 64
    /// Seeds the randomised election timeout; the agent passes fresh randomness, the simulator a seed.
    public var randomSeed: UInt64 = 0x5eed

    public init() {}

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            switch self { case .invalid(let why): why }
        }
    }

    /// Every rule broken, one line each (empty when the options are usable).
    public var problems: [Problem] {
        var found: [Problem] = []
        if heartbeatTicks < 1 { found.append(.invalid("heartbeatTicks must be at least 1 (is \(heartbeatTicks))")) }
        if electionTicks <= heartbeatTicks {
            found.append(.invalid("electionTicks (\(electionTicks)) must be greater than heartbeatTicks (\(heartbeatTicks))"))
        }
        if leaseTicks < 1 || leaseTicks > electionTicks - 2 {
            found.append(.invalid("leaseTicks (\(leaseTicks)) must be between 1 and electionTicks - 2 (\(electionTicks - 2)) so a lease ends before any follower may vote again"))
        }
        if heartbeatTicks * 2 > leaseTicks {
            found.append(.invalid("leaseTicks (\(leaseTicks)) must be at least twice heartbeatTicks (\(heartbeatTicks)), or the lease lapses between heartbeats"))
        }
        if maxInflightAppends < 1 || maxInflightAppends > 1 << 16 { found.append(.invalid("maxInflightAppends must be between 1 and 65536")) }
        if maxEntriesPerAppend < 1 || maxEntriesPerAppend > 1 << 20 { found.append(.invalid("maxEntriesPerAppend must be between 1 and 1048576")) }
        return found
    }
}

/// SplitMix64: a tiny deterministic generator, so a node's election timeouts replay from its seed.
public struct SplitMix64: Sendable, RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
