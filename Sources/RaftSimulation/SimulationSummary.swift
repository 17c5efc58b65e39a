/// Totals over many seeds, printed as the one summary line of `pgquorum-sim`.
public struct SimulationSummary: Sendable {
    public private(set) var seeds = 0
    public private(set) var ticks: UInt64 = 0
    public private(set) var violations = 0
    public private(set) var failingSeeds: [UInt64] = []
    private var elections = 0
    private var commits: UInt64 = 0
    private var messages = 0
    private var crashes = 0
    private var partitions = 0
    private var membershipChanges = 0
    private var transfers = 0
    private var snapshots = 0
    private var wipes = 0
    private var reads = 0
    private var leaseHeldTicks = 0
    private var worstRecovery: UInt64 = 0

    public init() {}

    public init(results: [SimulationResult]) {
        for result in results { add(result) }
    }

    public mutating func add(_ result: SimulationResult) {
        seeds += 1
        ticks += result.ticks
        if result.violation != nil {
            violations += 1
            failingSeeds.append(result.seed)
        }
        elections += result.elections
        commits += result.committedEntries
        messages += result.messagesDelivered
        crashes += result.crashes
        partitions += result.partitions
        membershipChanges += result.membershipChanges
        transfers += result.transfers
        snapshots += result.snapshotsInstalled
        wipes += result.wipes
        reads += result.readsConfirmed
        leaseHeldTicks += result.leaseHeldTicks
        worstRecovery = max(worstRecovery, result.recoveryTicks)
    }

    public var line: String {
        "seeds=\(seeds) steps=\(ticks) violations=\(violations) elections=\(elections) entries_committed=\(commits) "
            + "messages=\(messages) crashes=\(crashes) partitions=\(partitions) membership_changes=\(membershipChanges) "
            + "transfers_started=\(transfers) snapshots_installed=\(snapshots) wipes=\(wipes) reads=\(reads) lease_held_ticks=\(leaseHeldTicks) worst_recovery_ticks=\(worstRecovery)"
    }
}
