import RaftCore

/// What one simulated run does. Everything random is drawn from the seed, including the fault
/// profile (loss, duplication and delay rates), so each seed explores a different network.
public struct SimulationOptions: Sendable {
    /// Nodes that exist. The first `initialVoters` found the cluster and the rest start as joiners
    /// that membership changes may add (a quarter of the seeds instead found it with all nodes).
    public var nodeCount = 5
    public var initialVoters = 3
    /// Ticks of chaos: faults, crashes, membership changes, transfers, proposals.
    public var chaosTicks = 1_200
    /// After the chaos, the network heals and every node restarts; within this many ticks a
    /// leader must be elected and commit a proposal, or the run is a liveness violation.
    public var livenessBoundTicks = 400
    public var raft: RaftOptions
    /// What the nodes replicate (the default folds entries into a digest; pgquorum-sim
    /// `--application cluster-state` runs the agent's cluster state and its snapshots).
    public var application: any SimulatedApplication.Type = EntryDigest.self
    /// Record a readable trace of events (costly; used to replay a failing seed).
    public var trace = false

    public init() {
        var raft = RaftOptions()
        raft.heartbeatTicks = 1
        raft.electionTicks = 10
        raft.leaseTicks = 8
        // Small windows so flow control, probing and snapshots are exercised often.
        raft.maxInflightAppends = 4
        raft.maxEntriesPerAppend = 3
        self.raft = raft
    }
}

/// How a seed's network and crash behaviour was drawn.
struct FaultProfile: CustomStringConvertible {
    var dropRate: Double
    var duplicateRate: Double
    var maxDelayTicks: Int
    var partitionRate: Double
    var crashRate: Double
    /// Half of the seeds keep their membership; the others change it now and then.
    var membershipChangeRate: Double
    /// How many of the nodes found the cluster (the rest are joiners).
    var founders: Int
    /// Client proposals per tick. Some seeds are nearly idle: with no new writes, a node cut off
    /// from the leader keeps an up-to-date log and could win votes, which busy seeds never test.
    var proposalRate: Double

    init(random: inout SimulationRandom, nodeCount: Int, initialVoters: Int) {
        dropRate = random.double() * 0.15
        duplicateRate = random.double() * 0.05
        maxDelayTicks = random.int(below: 6)
        partitionRate = random.double() * 0.02
        crashRate = random.double() * 0.01
        membershipChangeRate = random.chance(0.5) ? 0.006 : 0
        founders = membershipChangeRate == 0 && random.chance(0.5) ? nodeCount : initialVoters
        proposalRate = random.chance(0.5) ? 0.01 : 0.3 * random.double()
    }

    var description: String {
        func pct(_ x: Double) -> String { String(Int(x * 1000)) + "‰" }
        return "drop \(pct(dropRate)) dup \(pct(duplicateRate)) delay ≤\(maxDelayTicks) partition \(pct(partitionRate)) crash \(pct(crashRate)) membership \(pct(membershipChangeRate)) founders \(founders) proposals \(pct(proposalRate))"
    }
}

/// The simulator's own generator with stable helpers (the standard library's `random(in:)` and
/// `shuffle()` may change between Swift versions; a replayed seed must not).
struct SimulationRandom {
    private var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { generator.next() }
    mutating func int(below bound: Int) -> Int { bound <= 1 ? 0 : Int(next() % UInt64(bound)) }
    mutating func double() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func chance(_ probability: Double) -> Bool { double() < probability }
    mutating func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[int(below: items.count)] }
    mutating func shuffle<T>(_ items: inout [T]) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            items.swapAt(i, int(below: i + 1))
        }
    }
}
