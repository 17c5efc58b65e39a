import ArgumentParser
import ClusterConfig
import Foundation
import Lab

struct LabCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Rehearse partitions, crashes and freezes on a local multi-process cluster (needs root).",
        discussion: """
            Every node runs a real agent in its own network namespace, with its own address on a \
            bridge the lab creates. State, config, certificates, logs and the fault event log \
            live in the lab directory (--dir, default ./lab), so every command works from any \
            shell. Walk-through: docs/lab.md.
            """,
        subcommands: [LabUp.self, LabDown.self, LabStatus.self, LabPartition.self, LabIsolate.self, LabCut.self,
                      LabHeal.self, LabKill.self, LabPause.self, LabResume.self, LabRestart.self, LabUpgrade.self, LabDelay.self, LabLogs.self, LabWait.self, LabScenario.self,
                      LabRelay.self]
    )
}

struct LabDirectory: ParsableArguments {
    @Option(help: "The lab directory.")
    var dir = "lab"
}

/// Runs a lab action and turns its error into the one-line failure ArgumentParser prints.
private func labAction(_ body: () throws(LabError) -> Void) throws {
    do { try body() } catch { throw CommandFailure(error.description) }
}

struct LabUp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a lab cluster: namespaces, bridge, certificates, config and one agent per node.",
        discussion: "Default topology: the seed's primary / secondary1 / secondary2 (cluster-configs/lab-3dc.yaml)."
    )

    @Option(help: "Take the nodes (names, labels, locations, priorities) and timing from this cluster config; the lab assigns addresses and ports.")
    var config: String?

    @Option(help: "Instead: this many nodes named node1…nodeN.")
    var nodes: Int?

    @Flag(help: "Agents only, without PostgreSQL (every agent a voting witness).")
    var noPostgres = false

    @Option(name: .customLong("binary"), help: "NODE=PATH: that node's agent runs another pgquorum binary (an earlier release, for a rolling upgrade). Repeatable.")
    var binaries: [String] = []

    @OptionGroup var lab: LabDirectory

    func validate() throws {
        if config != nil, nodes != nil { throw ValidationError("give --config or --nodes, not both") }
        if let nodes, !(1...9).contains(nodes) { throw ValidationError("--nodes must be between 1 and 9") }
        for binary in binaries where !binary.contains("=") || binary.hasPrefix("=") || binary.hasSuffix("=") {
            throw ValidationError("--binary takes NODE=PATH, not '\(binary)'")
        }
    }

    func run() async throws {
        var options = Lab.Options(directory: lab.dir, nodes: Lab.seedNodes, cluster: "lab-3dc", binary: Self.ownBinary(),
                                  postgres: !noPostgres)
        for binary in binaries {
            let parts = binary.split(separator: "=", maxSplits: 1)
            options.binaries[String(parts[0])] = String(parts[1])
        }
        if let nodes {
            options.nodes = Lab.numberedNodes(nodes)
            options.cluster = "lab-\(nodes)"
        } else if let config {
            do {
                let loaded = try ConfigLoader.load(path: config, tlsFiles: .skip)
                options.nodes = loaded.nodes
                options.cluster = loaded.cluster
                options.timing = loaded.timing
            } catch {
                for problem in error.problems { print(problem) }
                throw ExitCode.failure
            }
        }
        let state: LabState
        do {
            state = try await Lab.up(options)
        } catch {
            throw CommandFailure(error.description)
        }
        print("lab \(state.id) is up in \(state.directory): bridge \(state.bridge), subnet 10.213.\(state.subnet).0/24 (host \(state.hostAddress))")
        for node in state.nodes {
            print("  \(node.name): \(node.address), namespace \(node.namespace), agent pid \(node.agentPID.map(String.init) ?? "-"), API https://\(node.address):\(NodeConfig.defaultAPIPort)")
        }
        let leader = await Lab.waitForLeader(state)
        print(leader.map { "leader: \($0)" } ?? "no leader agreed within 30 s; see the logs: pgquorum lab logs NODE --dir \(lab.dir)")
        print("""

            Watch it:   pgquorum status --config \(state.configPath)
            Break it:   pgquorum lab isolate NODE | partition A,B C | cut A B | delay A B MS | kill NODE | pause NODE   (--dir \(lab.dir))
            Heal it:    pgquorum lab heal | resume NODE | restart NODE
            Tear down:  pgquorum lab down --dir \(lab.dir)
            """)
        // The lab stays up either way; a cluster without a leader is still a failure to report.
        if leader == nil { throw ExitCode.failure }
    }

    /// This executable, which the agents run too.
    static func ownBinary() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

struct LabDown: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop the agents and remove the lab's namespaces, bridge and directory (also after a crash)."
    )

    @OptionGroup var lab: LabDirectory

    @Flag(help: "Keep the lab directory (logs, event log, config) and the nodes' data.")
    var keep = false

    func run() throws {
        try labAction { () throws(LabError) in
            let outside = (try? LabState.load(directory: lab.dir))?.dataDirectory
            let removed = try Lab.down(directory: lab.dir, keepDirectory: keep)
            print("removed " + (removed.isEmpty ? "nothing (no agents or namespaces were left)" : removed.joined(separator: ", ")))
            if keep {
                print("kept \(lab.dir)" + (outside.map { "; the nodes' data stays in \($0) (rm -r it when done)" } ?? ""))
            }
        }
    }
}

struct LabStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the lab's nodes, their agents and the active cuts (then ask `pgquorum status` for the leader view)."
    )

    @OptionGroup var lab: LabDirectory

    func run() throws {
        try labAction { () throws(LabError) in
            let state = try LabState.load(directory: lab.dir)
            let agents = Lab.agentStates(state)
            print("lab \(state.id) in \(state.directory), subnet 10.213.\(state.subnet).0/24")
            for node in state.nodes {
                print("  \(node.name) \(node.address) agent \(agents[node.name] ?? "?")" + (node.agentPID.map { " (pid \($0))" } ?? "")
                      + (node.binary.map { ", binary \($0)" } ?? ""))
            }
            let cuts = state.cuts.map { "\($0.from)→\($0.to)" }
            print("cuts: " + (cuts.isEmpty ? "none" : cuts.joined(separator: " ")))
            let delays = state.delays.map { "\($0.a)↔\($0.b) \($0.milliseconds) ms" }
            print("delays: " + (delays.isEmpty ? "none" : delays.joined(separator: ", ")))
            print("leader view: pgquorum status --config \(state.configPath)")
        }
    }
}

struct LabWait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait until a node serves as the writable primary (--whole: and every other node streams from it); print the primary's name.",
        discussion: "For scripts: `pgquorum lab kill $(pgquorum lab wait --whole)` crashes the current primary. Exits 1 on timeout."
    )

    @Flag(help: "Also wait until every other node is a streaming replica.")
    var whole = false

    @Option(help: "Seconds to wait at most.")
    var timeout = 120.0

    @OptionGroup var lab: LabDirectory

    func run() async throws {
        let state: LabState
        let probe: LabProbe
        do {
            state = try LabState.load(directory: lab.dir)
            probe = try LabProbe(state)
        } catch let error as LabError {
            throw CommandFailure(error.description)
        }
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1_000))
        while ContinuousClock.now < deadline {
            if let primary = whole ? await probe.wholeClusterPrimary() : await probe.primary() {
                print(primary)
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let problems = await probe.knownProblems()
        let known = problems.isEmpty ? "" : ": " + problems.joined(separator: "; ")
        throw CommandFailure((whole ? "the cluster was not whole (a primary and streaming replicas) within \(Int(timeout)) s"
                                    : "no node served as primary within \(Int(timeout)) s") + known + "; see pgquorum status --config \(state.configPath)")
    }
}

struct LabPartition: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partition",
        abstract: "Cut all traffic between groups of nodes, e.g. `lab partition primary,secondary1 secondary2`."
    )

    @Argument(help: "Two or more sides, each a comma-separated list of nodes.")
    var sides: [String]

    @OptionGroup var lab: LabDirectory

    func run() throws {
        let groups = sides.map { $0.split(separator: ",").map(String.init) }
        try labAction { () throws(LabError) in try Lab.partition(directory: lab.dir, sides: groups) }
        print("partitioned: " + groups.map { $0.joined(separator: ",") }.joined(separator: " | "))
    }
}

struct LabIsolate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "isolate", abstract: "Cut one node off from every other node (the host still reaches it).")
    @Argument var node: String
    @OptionGroup var lab: LabDirectory

    func run() throws {
        try labAction { () throws(LabError) in try Lab.isolate(directory: lab.dir, node: node) }
        print("isolated \(node)")
    }
}

struct LabCut: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cut", abstract: "Drop packets from A to B only (B's packets still reach A; TCP links between them fail both ways).")
    @Argument var from: String
    @Argument var to: String
    @OptionGroup var lab: LabDirectory

    func run() throws {
        try labAction { () throws(LabError) in try Lab.cut(directory: lab.dir, from: from, to: to) }
        print("cut \(from) → \(to)")
    }
}

struct LabHeal: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "heal", abstract: "Remove every partition, cut and delay.")
    @OptionGroup var lab: LabDirectory

    func run() throws {
        try labAction { () throws(LabError) in try Lab.heal(directory: lab.dir) }
        print("healed")
    }
}

struct LabKill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill", abstract: "SIGKILL a node's agent (its PostgreSQL goes with it), or only its PostgreSQL.")
    @Argument var node: String
    @Flag(help: "Kill the agent (the default); its PostgreSQL stops with it.") var agent = false
    @Flag(help: "Kill only PostgreSQL (the postmaster and its backends, a crash); the agent restarts it.") var postgres = false
    @OptionGroup var lab: LabDirectory

    func validate() throws {
        if agent, postgres { throw ValidationError("give --agent or --postgres, not both") }
    }

    func run() throws {
        if postgres {
            try labAction { () throws(LabError) in try Lab.killPostgres(directory: lab.dir, node: node) }
            print("killed PostgreSQL on \(node)")
            return
        }
        try labAction { () throws(LabError) in try Lab.kill(directory: lab.dir, node: node) }
        print("killed the agent of \(node)")
    }
}

struct LabPause: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "SIGSTOP a node's agent (a frozen process).")
    @Argument var node: String
    @OptionGroup var lab: LabDirectory

    func run() throws {
        try labAction { () throws(LabError) in try Lab.pause(directory: lab.dir, node: node, resume: false) }
        print("paused the agent of \(node)")
    }
}

struct LabResume: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "SIGCONT a paused agent.")
    @Argument var node: String
    @OptionGroup var lab: LabDirectory

    func run() throws {
        try labAction { () throws(LabError) in try Lab.pause(directory: lab.dir, node: node, resume: true) }
        print("resumed the agent of \(node)")
    }
}

struct LabUpgrade: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "A rolling upgrade's step: stop a node's agent gracefully (a primary is handed over first) and start it with another binary.")
    @Argument var node: String
    @Option(help: "The pgquorum binary the node runs from now on.")
    var binary: String
    @OptionGroup var lab: LabDirectory

    func run() throws {
        try labAction { () throws(LabError) in try Lab.upgrade(directory: lab.dir, node: node, binary: binary) }
        print("\(node) now runs \(binary)")
    }
}

struct LabRestart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Kill a node's agent if it runs, and start it again.")
    @Argument var node: String
    @Flag(help: "Stop it with SIGTERM, as an operator's restart does (a primary is handed over cleanly first); SIGKILL after 30 s.")
    var graceful = false
    @OptionGroup var lab: LabDirectory

    func run() throws {
        try labAction { () throws(LabError) in try Lab.restart(directory: lab.dir, node: node, graceful: graceful) }
        print("restarted the agent of \(node)" + (graceful ? " (graceful stop)" : ""))
    }
}

struct LabDelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delay",
        abstract: "Add latency to the link between two nodes, each way (0 removes it), e.g. to rehearse a cross-DC link.",
        discussion: "Carried out by a relay process in each of the two namespaces (this kernel has no tc netem). `lab heal` removes delays too."
    )
    @Argument var a: String
    @Argument var b: String
    @Argument(help: "Added one-way latency in milliseconds.") var milliseconds: Int
    @OptionGroup var lab: LabDirectory

    func run() async throws {
        do {
            try await Lab.delay(directory: lab.dir, between: a, and: b, milliseconds: milliseconds)
        } catch {
            throw CommandFailure(error.description)
        }
        print(milliseconds > 0 ? "delayed \(a) ↔ \(b) by \(milliseconds) ms each way" : "removed the delay between \(a) and \(b)")
    }
}

/// The relay process behind `lab delay`, started by the lab inside a namespace.
struct LabRelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "relay", abstract: "Internal: the delay relay.", shouldDisplay: false)
    @Option(help: "LISTENHOST:PORT=TARGETHOST:PORT") var forward: [String]
    @Option var delayMs: Int

    func run() async throws {
        let forwards = forward.compactMap(DelayRelay.Forward.init(argument:))
        guard forwards.count == forward.count, !forwards.isEmpty else { throw ValidationError("--forward expects LISTENHOST:PORT=TARGETHOST:PORT") }
        try await DelayRelay.run(forwards: forwards, delay: .milliseconds(delayMs))
    }
}

struct LabLogs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a node's agent log (or the fault event log with --events).")
    @Argument var node: String?
    @Flag(help: "Print the lab's event log (every fault action with its time).") var events = false
    @Option(help: "Only the last N lines.") var lines: Int?
    @OptionGroup var lab: LabDirectory

    func validate() throws {
        if let lines, lines < 0 { throw ValidationError("--lines must be 0 or more") }
    }

    func run() throws {
        let state: LabState
        do { state = try LabState.load(directory: lab.dir) } catch { throw CommandFailure(error.description) }
        let path: String
        if events {
            path = state.eventLogPath
        } else {
            guard let node, state.node(node) != nil else {
                throw CommandFailure("name a node of this lab (\(state.nodes.map(\.name).joined(separator: ", "))) or use --events")
            }
            path = state.logPath(of: node)
        }
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let all = text.split(separator: "\n", omittingEmptySubsequences: false)
        print((lines.map { all.suffix($0 + 1) } ?? all[...]).joined(separator: "\n"), terminator: "")
    }
}
