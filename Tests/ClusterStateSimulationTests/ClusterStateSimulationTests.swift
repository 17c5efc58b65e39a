import ClusterState
import ClusterStateSimulation
import RaftCore
import RaftSimulation
import Testing

/// The cluster state whose snapshot forgets the history: the simulation must catch it.
private struct ForgetfulSnapshots: SimulatedApplication {
    var real: ClusterStateApplication

    init?(snapshotData data: [UInt8]) {
        guard let real = ClusterStateApplication(snapshotData: data) else { return nil }
        self.real = real
    }

    mutating func apply(_ entry: Entry) { real.apply(entry) }
    var fingerprint: UInt64 { real.fingerprint }
    func proposal(_ number: UInt64) -> [UInt8] { real.proposal(number) }

    func snapshotData() -> [UInt8] { ClusterStateSnapshot.encode(Self.droppingLastPromotion(real.state)) }

    static func droppingLastPromotion(_ state: ClusterState) -> ClusterState {
        guard state.history.count > 1 else { return state }
        // Replay every history entry but the last as commands: a state one promotion short.
        var shorter = ClusterState()
        for entry in state.history.dropLast() {
            if entry.epoch == 1 {
                shorter.apply(.bootstrap(systemIdentifier: state.systemIdentifier ?? 0, primary: entry.primary,
                                         unixMilliseconds: entry.unixMilliseconds, timeline: entry.timeline))
            } else {
                shorter.apply(.promote(node: entry.primary, epoch: entry.epoch, timeline: entry.timeline, walPosition: entry.walPosition,
                                       reason: entry.reason, unixMilliseconds: entry.unixMilliseconds))
            }
        }
        return shorter
    }
}

@Suite struct ClusterStateSimulationTests {
    @Test func theClusterStateSurvivesCompactionsSnapshotsAndRestarts() {
        var options = SimulationOptions()
        options.application = ClusterStateApplication.self
        var installed = 0
        for seed in UInt64(1)...40 {
            let result = Simulation.run(seed: seed, options: options)
            #expect(result.violation == nil, "seed \(seed): \(result.violation ?? "")")
            installed += result.snapshotsInstalled
        }
        #expect(installed > 0, "no seed sent a snapshot: compaction is not exercised")
    }

    @Test func aSnapshotThatLosesAPromotionFailsASeed() {
        var options = SimulationOptions()
        options.application = ForgetfulSnapshots.self
        let failures = (UInt64(1)...40).compactMap { Simulation.run(seed: $0, options: options).violation }
        #expect(failures.contains { $0.contains("state machine safety") }, "\(failures)")
    }
}
