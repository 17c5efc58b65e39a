import ArgumentParser
import ClusterStateSimulation
import RaftSimulation

/// What the simulated nodes replicate.
enum ApplicationKind: String, ExpressibleByArgument, CaseIterable {
    /// Every applied entry folded into a digest.
    case digest
    /// The agent's cluster state: real cluster commands and the agent's snapshots.
    case clusterState = "cluster-state"
}

@main
struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgquorum-sim",
        abstract: "Deterministic simulation of the pgquorum Raft core.",
        discussion: """
            Each seed runs a five-node world (three founding voters and two joiners, or five \
            founding voters) through message \
            loss, duplication, delay, partitions, one-way cuts, crashes that lose unpersisted state, \
            wiped nodes (storage wipe), membership changes, leadership transfers, reads and \
            compactions, checking the safety \
            invariants after every event; then heals everything and requires a commit within a \
            bounded number of ticks. A failing seed prints itself and its trace; --seed replays it.
            """
    )

    @Option(help: "Number of seeds to run.")
    var seeds: UInt64 = 100

    @Option(help: "First seed of the range.")
    var start: UInt64 = 1

    @Option(help: "Ticks of chaos per seed before the heal.")
    var steps: Int = SimulationOptions().chaosTicks

    @Option(help: "Replay exactly one seed; prints its summary, and its trace's last events on a violation.")
    var seed: UInt64?

    @Flag(help: "With --seed: print the whole trace.")
    var trace = false

    @Option(help: "What the nodes replicate: digest (every entry folded into a hash) or cluster-state (the agent's cluster commands and snapshots).")
    var application: ApplicationKind = .digest

    mutating func run() throws {
        var options = SimulationOptions()
        options.chaosTicks = steps
        switch application {
        case .digest: options.application = EntryDigest.self
        case .clusterState: options.application = ClusterStateApplication.self
        }
        if let seed {
            options.trace = true
            let result = Simulation.run(seed: seed, options: options)
            if trace || result.violation != nil {
                let lines = trace ? result.trace : Array(result.trace.suffix(80))
                print(lines.joined(separator: "\n"))
            }
            print(SimulationSummary(results: [result]).line)
            if let violation = result.violation {
                print("VIOLATION seed=\(seed): \(violation)")
                throw ExitCode.failure
            }
            return
        }
        var summary = SimulationSummary()
        for current in start..<(start + seeds) {
            let result = Simulation.run(seed: current, options: options)
            summary.add(result)
            if let violation = result.violation {
                print("VIOLATION seed=\(current): \(violation)")
                print("fault profile: \(result.faultProfile)")
                options.trace = true
                let replay = Simulation.run(seed: current, options: options)
                print("last events of the replay (pgquorum-sim --seed \(current) --steps \(steps) --application \(application.rawValue) --trace for all):")
                print(replay.trace.suffix(60).joined(separator: "\n"))
                options.trace = false
            }
        }
        print(summary.line)
        if summary.violations > 0 { throw ExitCode.failure }
    }
}
