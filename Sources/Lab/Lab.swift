import Agent
import ClusterCertificates
import ClusterConfig
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PostgresControl

/// A local cluster in network namespaces: every node is its own namespace with its own address
/// on a bridge the lab creates (subnet 10.213.<n>.0/24, no route anywhere else), running a real
/// `pgquorum agent` with a production-shaped config and certificates from the cluster CA.
/// Faults are iptables rules inside the namespaces and signals to the agents; no test hooks in
/// the agent. See docs/lab.md.
public enum Lab {
    public struct Options: Sendable {
        public var directory: String
        /// Node descriptions to start from; hosts, ports, data and TLS paths are the lab's own.
        public var nodes: [NodeConfig]
        public var cluster: String
        public var timing: Timing
        public var binary: String
        /// Nodes whose agent runs another binary (a rolling upgrade's old release).
        public var binaries: [String: String] = [:]
        /// Every node runs PostgreSQL (port 5432 at its address), managed by its agent.
        public var postgres: Bool

        public init(directory: String, nodes: [NodeConfig], cluster: String, timing: Timing = Timing(), binary: String,
                    postgres: Bool = false, binaries: [String: String] = [:]) {
            self.directory = directory
            self.nodes = nodes
            self.cluster = cluster
            self.timing = timing
            self.binary = binary
            self.postgres = postgres
            self.binaries = binaries
        }
    }

    /// The seed's deployment (cluster-configs/lab-3dc.yaml describes the same nodes).
    public static let seedNodes: [NodeConfig] = [
        NodeConfig(name: "primary", label: "主数据中心", location: "华东", host: "", priority: 0, dataDirectory: ""),
        NodeConfig(name: "secondary1", label: "同城备份中心", location: "华东", host: "", priority: 1, dataDirectory: ""),
        NodeConfig(name: "secondary2", label: "异地备份中心", location: "华南", host: "", priority: 2, dataDirectory: ""),
    ]

    /// `count` nodes named node1…nodeN, priorities 0…N-1.
    public static func numberedNodes(_ count: Int) -> [NodeConfig] {
        (1...max(1, count)).map {
            NodeConfig(name: "node\($0)", label: "Site \($0)", location: "lab", host: "", priority: $0 - 1, dataDirectory: "")
        }
    }

    static let registry = "/run/pgquorum-lab"
    static let chain = "PGQLAB"
    static let delayChain = "PGQDELAY"

    // MARK: - Up and down

    /// Creates the network, writes config and certificates, starts the agents and waits (bounded)
    /// for a leader. On failure everything made so far is removed again.
    public static func up(_ options: Options) async throws(LabError) -> LabState {
        try requireRoot()
        for tool in ["ip", "iptables"] where Shell.locate(tool) == nil {
            throw LabError("\(tool) is not installed; the lab needs iproute2 and iptables (scripts/install-deps.sh installs them)")
        }
        guard FileManager.default.isExecutableFile(atPath: options.binary) else {
            throw LabError("the agent binary \(options.binary) does not exist; build it first (swift build --product pgquorum)")
        }
        for (node, path) in options.binaries.sorted(by: { $0.key < $1.key }) {
            guard options.nodes.contains(where: { $0.name == node }) else {
                throw LabError("--binary names \(node), which is not a node of this lab (\(options.nodes.map(\.name).joined(separator: ", ")))")
            }
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw LabError("the agent binary \(path) for \(node) does not exist; build that release first")
            }
        }
        let directory = URL(fileURLWithPath: options.directory).standardizedFileURL.path
        if FileManager.default.fileExists(atPath: directory + "/lab.json") {
            throw LabError("a lab already lives in \(directory); use it, or remove it with `pgquorum lab down --dir \(directory)`")
        }
        if let contents = try? FileManager.default.contentsOfDirectory(atPath: directory), !contents.isEmpty {
            throw LabError("\(directory) exists and is not empty (an earlier lab's files?); remove it or choose another --dir")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        } catch {
            throw LabError("cannot create \(directory): \(error.localizedDescription)")
        }
        // An id whose names nobody uses yet (another lab's namespaces must never be touched).
        let existing = (try? Shell.run(["ip", "-o", "link", "show"]).output ?? "") ?? ""
        let namespaces = (try? Shell.run(["ip", "netns", "list"]).output ?? "") ?? ""
        var id = String(format: "%04x", UInt16.random(in: 1 ... .max))
        while existing.contains("pq\(id)-") || namespaces.contains("pq\(id)-")
                || FileManager.default.fileExists(atPath: outsideDataDirectory(id: id)) {
            id = String(format: "%04x", UInt16.random(in: 1 ... .max))
        }
        let subnet = try reserveSubnet(for: directory)
        var state = LabState(
            id: id, directory: directory, bridge: "pq\(id)-br", subnet: subnet, hostAddress: "10.213.\(subnet).1",
            nodes: options.nodes.enumerated().map { index, node in
                LabState.Node(name: node.name, namespace: "pq\(id)-n\(index + 1)", hostInterface: "pq\(id)-h\(index + 1)",
                              address: "10.213.\(subnet).\(index + 11)", agentPID: nil, paused: false,
                              binary: options.binaries[node.name].map { URL(fileURLWithPath: $0).standardizedFileURL.path })
            },
            cuts: [], delays: [], binary: URL(fileURLWithPath: options.binary).standardizedFileURL.path,
            dataDirectory: options.postgres ? outsideDataDirectoryIfNeeded(for: directory, id: id, nodes: options.nodes) : nil
        )
        do {
            // Recorded first: `lab down` cleans up whatever exists of these names.
            try state.save()
        } catch {
            releaseSubnet(subnet, of: directory)
            throw LabError("cannot write \(state.statePath): \(error.localizedDescription)")
        }
        do {
            try createDataRoot(state)
            try writeConfig(options, state: state)
            try createNetwork(state)
            event(state, "up", nodes: state.nodes.map(\.name), detail: "subnet 10.213.\(subnet).0/24, bridge \(state.bridge)")
            for index in state.nodes.indices {
                state.nodes[index].agentPID = try startAgent(state, state.nodes[index])
                try save(state)
            }
        } catch {
            _ = try? down(directory: directory, keepDirectory: true)
            removeOutsideData(state)
            throw error
        }
        return state
    }

    /// Stops the agents, deletes the namespaces and the bridge, and (unless `keepDirectory`)
    /// the lab directory. Works on a half-created lab too. Returns what it removed.
    @discardableResult
    public static func down(directory: String, keepDirectory: Bool = false) throws(LabError) -> [String] {
        let lock = try lockLab(directory)
        defer { if lock >= 0 { close(lock) } }
        let state = try LabState.load(directory: directory)
        var removed: [String] = []
        for pid in state.delays.flatMap(\.relayPIDs) where isRelay(pid, of: state) {
            Glibc.kill(pid, SIGKILL)
            waitForExit(pid)
            removed.append("relay (pid \(pid))")
        }
        for node in state.nodes {
            if let pid = node.agentPID, isAgent(pid, of: state) {
                Glibc.kill(pid, SIGCONT)
                Glibc.kill(pid, SIGKILL)
                waitForExit(pid)
                removed.append("agent \(node.name) (pid \(pid))")
            }
        }
        // Whatever else still runs in the namespaces (an agent or relay whose PID never reached
        // lab.json because `lab up` died in between) would outlive them: kill it first.
        for node in state.nodes {
            let pids = ((try? Shell.run(["ip", "netns", "pids", node.namespace]))?.output ?? "")
                .split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            for pid in pids {
                Glibc.kill(pid, SIGKILL)
                waitForExit(pid)
                removed.append("process \(pid) in \(node.namespace)")
            }
        }
        for node in state.nodes where (try? Shell.run(["ip", "netns", "del", node.namespace]))?.status == 0 {
            removed.append("namespace \(node.namespace)")
        }
        if (try? Shell.run(["ip", "link", "del", state.bridge]))?.status == 0 { removed.append("bridge \(state.bridge)") }
        // The kernel removes the host ends of the veth pairs asynchronously; wait (bounded).
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline,
              ((try? Shell.run(["ip", "-o", "link", "show"]))?.output ?? "").contains("pq\(state.id)-") {
            usleep(50_000)
        }
        if !keepDirectory, let data = removeOutsideData(state) { removed.append("data \(data)") }
        event(state, "down", nodes: [], detail: removed.joined(separator: ", "))
        releaseSubnet(state.subnet, of: state.directory)
        if keepDirectory {
            // The lab is gone; its record stays for reading, under a name no command loads.
            try? FileManager.default.moveItem(atPath: state.statePath, toPath: state.statePath + ".down")
        } else {
            try? FileManager.default.removeItem(atPath: state.directory)
        }
        return removed
    }

    // MARK: - Faults

    /// Cuts every link between the two sides (both directions). Cuts add up until `heal`.
    public static func partition(directory: String, sides: [[String]]) throws(LabError) {
        let lock = try lockLab(directory)
        defer { if lock >= 0 { close(lock) } }
        var state = try LabState.load(directory: directory)
        try requireNodes(sides.flatMap { $0 }, in: state)
        guard sides.count >= 2, sides.allSatisfy({ !$0.isEmpty }) else { throw LabError("a partition needs at least two non-empty sides, e.g. `primary,secondary1 secondary2`") }
        let all = sides.flatMap { $0 }
        if let twice = all.first(where: { name in all.filter { $0 == name }.count > 1 }) {
            throw LabError("\(twice) is on more than one side; each node belongs to one side")
        }
        var cuts = Set(state.cuts)
        for (index, side) in sides.enumerated() {
            for other in sides[(index + 1)...] {
                for a in side { for b in other { cuts.insert(.init(from: a, to: b)); cuts.insert(.init(from: b, to: a)) } }
            }
        }
        state.cuts = cuts.sorted { ($0.from, $0.to) < ($1.from, $1.to) }
        try applyCuts(state)
        try save(state)
        event(state, "partition", nodes: sides.flatMap { $0 }, detail: sides.map { $0.joined(separator: ",") }.joined(separator: " | "))
    }

    /// Cuts `node` off from every other node (the host can still reach it).
    public static func isolate(directory: String, node: String) throws(LabError) {
        try requireRoot()
        let state = try LabState.load(directory: directory)
        try requireNodes([node], in: state)
        try partition(directory: directory, sides: [[node], state.nodes.map(\.name).filter { $0 != node }])
    }

    /// Drops traffic from `from` to `to` only.
    /// (TCP connections between the two fail both ways, since their acknowledgements are lost.)
    public static func cut(directory: String, from: String, to: String) throws(LabError) {
        let lock = try lockLab(directory)
        defer { if lock >= 0 { close(lock) } }
        var state = try LabState.load(directory: directory)
        try requireNodes([from, to], in: state)
        guard from != to else { throw LabError("cut needs two different nodes") }
        if !state.cuts.contains(.init(from: from, to: to)) { state.cuts.append(.init(from: from, to: to)) }
        try applyCuts(state)
        try save(state)
        event(state, "cut", nodes: [from, to], detail: "\(from) → \(to) dropped")
    }

    /// Removes every cut and every delay.
    public static func heal(directory: String) throws(LabError) {
        let lock = try lockLab(directory)
        defer { if lock >= 0 { close(lock) } }
        var state = try LabState.load(directory: directory)
        state.cuts = []
        try applyCuts(state)
        let delayed = state.delays
        for delay in delayed { try removeDelay(&state, between: delay.a, and: delay.b) }
        try save(state)
        event(state, "heal", nodes: [], detail: "all links restored")
    }

    /// Adds `milliseconds` of latency to the link between `a` and `b`, in each direction (0
    /// removes it). New and existing connections alike: existing ones are reset so that they
    /// reconnect through the relays.
    public static func delay(directory: String, between a: String, and b: String, milliseconds: Int) async throws(LabError) {
        let lock = try lockLab(directory)
        defer { if lock >= 0 { close(lock) } }
        var state = try LabState.load(directory: directory)
        try requireNodes([a, b], in: state)
        guard a != b else { throw LabError("delay needs two different nodes") }
        guard (0...10_000).contains(milliseconds) else { throw LabError("the delay must be between 0 and 10000 ms") }
        try removeDelay(&state, between: a, and: b)
        if milliseconds > 0 {
            var pids: [Int32] = []
            for (near, far) in [(a, b), (b, a)] {
                pids.append(try startRelay(state, near: near, far: far, milliseconds: milliseconds))
            }
            state.delays.append(.init(a: a, b: b, milliseconds: milliseconds, relayPIDs: pids))
            try save(state)
            for (near, far) in [(a, b), (b, a)] { try await waitForRelay(state, near: near, far: far) }
            try applyDelays(state)
            try resetConnections(state, between: a, and: b)
        }
        try save(state)
        event(state, "delay", nodes: [a, b], detail: milliseconds > 0 ? "\(milliseconds) ms each way" : "removed")
    }

    /// SIGKILL of the node's agent; returns once it is gone.
    public static func kill(directory: String, node name: String) throws(LabError) {
        let lock = try lockLab(directory)
        defer { if lock >= 0 { close(lock) } }
        var state = try LabState.load(directory: directory)
        let index = try nodeIndex(name, in: state)
        guard let pid = state.nodes[index].agentPID, isAgent(pid, of: state) else {
            throw LabError("the agent of \(name) is not running; start it with `pgquorum lab restart \(name)`")
        }
        Glibc.kill(pid, SIGKILL)
        waitForExit(pid)
        state.nodes[index].agentPID = nil
        state.nodes[index].paused = false
        try save(state)
        event(state, "kill", nodes: [name], detail: "SIGKILL agent pid \(pid)")
    }

    /// SIGKILL of the node's postmaster and every process it started (a PostgreSQL crash; the
    /// agent stays and restarts it).
    public static func killPostgres(directory: String, node name: String) throws(LabError) {
        let lock = try lockLab(directory)
        defer { if lock >= 0 { close(lock) } }
        let state = try LabState.load(directory: directory)
        _ = try nodeIndex(name, in: state)
        let pidFile = state.postgresDirectory(of: name) + "/postmaster.pid"
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let postmaster = text.split(separator: "\n").first.flatMap({ Int32($0) }), processState(postmaster) != nil else {
            throw LabError("PostgreSQL is not running on \(name) (no live postmaster in \(pidFile))")
        }
        // Its children first, found before the postmaster goes (they would be reparented).
        let children = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> Int32? in
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == postmaster ? pid : nil
        }
        Glibc.kill(postmaster, SIGKILL)
        for child in children { Glibc.kill(child, SIGKILL) }
        waitForExit(postmaster)
        event(state, "kill-postgres", nodes: [name], detail: "SIGKILL postmaster pid \(postmaster) and \(children.count) backends")
    }

    /// SIGSTOP (pause) or SIGCONT (resume) of the node's agent; returns once in effect.
    public static func pause(directory: String, node name: String, resume: Bool) throws(LabError) {
        let lock = try lockLab(directory)
        defer { if lock >= 0 { close(lock) } }
        var state = try LabState.load(directory: directory)
        let index = try nodeIndex(name, in: state)
        guard let pid = state.nodes[index].agentPID, isAgent(pid, of: state) else {
            throw LabError("the agent of \(name) is not running")
        }
        Glibc.kill(pid, resume ? SIGCONT : SIGSTOP)
        let deadline = ContinuousClock.now + .seconds(5)
        while (processState(pid) == "T") == resume, ContinuousClock.now < deadline { usleep(5_000) }
        state.nodes[index].paused = !resume
        try save(state)
        event(state, resume ? "resume" : "pause", nodes: [name], detail: "\(resume ? "SIGCONT" : "SIGSTOP") agent pid \(pid)")
    }

    /// A rolling upgrade's step: the node's agent stopped gracefully (SIGTERM: a primary is handed
    /// over first), then started again with `binary`.
    public static func upgrade(directory: String, node name: String, binary: String) throws(LabError) {
        let path = URL(fileURLWithPath: binary).standardizedFileURL.path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw LabError("\(path) is not an executable; build the release to upgrade to first")
        }
        do {
            let lock = try lockLab(directory)
            defer { if lock >= 0 { close(lock) } }
            var state = try LabState.load(directory: directory)
            let index = try nodeIndex(name, in: state)
            state.nodes[index].binary = path
            try save(state)
            event(state, "upgrade", nodes: [name], detail: "to \(path)")
        }
        try restart(directory: directory, node: name, graceful: true)
    }

    /// Kills the node's agent if it runs, and starts it again. `graceful`: SIGTERM instead, as an
    /// operator's restart does (a primary's agent hands the primary over cleanly first), and
    /// SIGKILL only if it has not exited within `gracePeriod`.
    public static func restart(directory: String, node name: String, graceful: Bool = false,
                               gracePeriod: Duration = .seconds(30)) throws(LabError) {
        let lock = try lockLab(directory)
        defer { if lock >= 0 { close(lock) } }
        var state = try LabState.load(directory: directory)
        let index = try nodeIndex(name, in: state)
        var how = "SIGKILL"
        if let pid = state.nodes[index].agentPID, isAgent(pid, of: state) {
            Glibc.kill(pid, SIGCONT)
            if graceful {
                how = "SIGTERM"
                Glibc.kill(pid, SIGTERM)
                waitForExit(pid, within: gracePeriod)
            }
            // After a graceful exit the PID is reaped and may be reused: only a live agent is killed.
            if isAgent(pid, of: state) {
                if graceful { how = "SIGTERM, then SIGKILL after \(gracePeriod)" }
                Glibc.kill(pid, SIGKILL)
                waitForExit(pid)
            }
        }
        let pid = try startAgent(state, state.nodes[index])
        state.nodes[index].agentPID = pid
        state.nodes[index].paused = false
        try save(state)
        // An agent that cannot start (a bad config, a missing namespace) exits at once.
        usleep(300_000)
        guard isAgent(pid, of: state) else {
            throw LabError("the agent of \(name) exited right after starting; see \(state.logPath(of: name))")
        }
        event(state, "restart", nodes: [name], detail: "agent pid \(state.nodes[index].agentPID ?? 0) (old agent stopped by \(how))")
    }

    /// Whether each node's agent runs: "running", "paused" or "stopped".
    public static func agentStates(_ state: LabState) -> [String: String] {
        Dictionary(uniqueKeysWithValues: state.nodes.map { node in
            guard let pid = node.agentPID, isAgent(pid, of: state) else { return (node.name, "stopped") }
            return (node.name, processState(pid) == "T" ? "paused" : "running")
        })
    }

    // MARK: - Delays

    /// Ports whose connections a delay relays: the agents' links and the operator API.
    private static let relayedPorts = [NodeConfig.defaultAgentPort, NodeConfig.defaultAPIPort]

    /// The relay port in `near`'s namespace for connections to `far`'s `port`.
    private static func relayPort(_ state: LabState, far: String, port: Int) -> Int {
        let index = state.nodes.firstIndex { $0.name == far } ?? 0
        return 20_000 + index * 10 + (relayedPorts.firstIndex(of: port) ?? 0)
    }

    private static func startRelay(_ state: LabState, near: String, far: String, milliseconds: Int) throws(LabError) -> Int32 {
        guard let nearNode = state.node(near), let farNode = state.node(far) else {
            throw LabError("no node \(near) or \(far) in this lab")
        }
        let forwards = relayedPorts.map {
            DelayRelay.Forward(listenHost: nearNode.address, listenPort: relayPort(state, far: far, port: $0),
                               targetHost: farNode.address, targetPort: $0).argument
        }
        return try spawn(in: nearNode.namespace,
                         [state.binary, "lab", "relay", "--delay-ms", "\(milliseconds)"] + forwards.flatMap { ["--forward", $0] },
                         log: state.directory + "/logs/relay-\(near)-\(far).log", what: "the delay relay for \(near) → \(far)")
    }

    /// Waits until the relay in `near`'s namespace listens on all its ports. (Asked of the
    /// kernel with `ss`: a test connection would go on to the far agent and alarm it.)
    private static func waitForRelay(_ state: LabState, near: String, far: String) async throws(LabError) {
        guard let namespace = state.node(near)?.namespace else { return }
        let ports = relayedPorts.map { relayPort(state, far: far, port: $0) }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            let listening = (try? Shell.run(["ip", "netns", "exec", namespace, "ss", "-Hltn"]).output) ?? ""
            if ports.allSatisfy({ listening.contains(":\($0) ") }) { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
        throw LabError("the delay relay in \(near) did not start; see \(state.directory)/logs/relay-\(near)-\(far).log")
    }

    private static func removeDelay(_ state: inout LabState, between a: String, and b: String) throws(LabError) {
        guard let index = state.delays.firstIndex(where: { $0.joins(a, b) }) else { return }
        let delay = state.delays.remove(at: index)
        try applyDelays(state)
        for pid in delay.relayPIDs where isRelay(pid, of: state) {
            Glibc.kill(pid, SIGKILL)
            waitForExit(pid)
        }
        try resetConnections(state, between: a, and: b)
    }

    /// Rewrites every namespace's redirect chain from the state's delays.
    private static func applyDelays(_ state: LabState) throws(LabError) {
        for node in state.nodes {
            let exec = ["ip", "netns", "exec", node.namespace, "iptables", "-t", "nat"]
            try Shell.must(exec + ["-F", delayChain])
            for delay in state.delays where delay.a == node.name || delay.b == node.name {
                guard let far = state.node(delay.a == node.name ? delay.b : delay.a) else { continue }
                for port in relayedPorts {
                    try Shell.must(exec + ["-A", delayChain, "-p", "tcp", "-d", far.address, "--dport", "\(port)",
                                           "-m", "mark", "!", "--mark", "\(DelayRelay.mark)",
                                           "-j", "DNAT", "--to-destination", "\(node.address):\(relayPort(state, far: far.name, port: port))"])
                }
            }
        }
    }

    /// Closes the TCP connections between two nodes (both namespaces), so that they reconnect
    /// under the current redirect rules.
    private static func resetConnections(_ state: LabState, between a: String, and b: String) throws(LabError) {
        guard let nodeA = state.node(a), let nodeB = state.node(b) else { return }
        for (near, far) in [(nodeA, nodeB), (nodeB, nodeA)] {
            try Shell.run(["ip", "netns", "exec", near.namespace, "ss", "-K", "dst", far.address])
        }
    }

    static func isRelay(_ pid: Int32, of state: LabState) -> Bool {
        guard let command = liveCommandLine(pid) else { return false }
        return command.contains("lab relay") && command.contains(state.binary)
    }

    // MARK: - Network

    private static func createNetwork(_ state: LabState) throws(LabError) {
        try Shell.must(["ip", "link", "add", state.bridge, "type", "bridge"])
        try Shell.must(["ip", "addr", "add", "\(state.hostAddress)/24", "dev", state.bridge])
        try Shell.must(["ip", "link", "set", state.bridge, "up"])
        for (index, node) in state.nodes.enumerated() {
            let inside = "pq\(state.id)-c\(index + 1)"
            try Shell.must(["ip", "netns", "add", node.namespace])
            try Shell.must(["ip", "link", "add", node.hostInterface, "type", "veth", "peer", "name", inside])
            try Shell.must(["ip", "link", "set", inside, "netns", node.namespace])
            try Shell.must(["ip", "link", "set", node.hostInterface, "master", state.bridge])
            try Shell.must(["ip", "link", "set", node.hostInterface, "up"])
            let exec = ["ip", "netns", "exec", node.namespace]
            try Shell.must(exec + ["ip", "link", "set", inside, "name", "eth0"])
            try Shell.must(exec + ["ip", "addr", "add", "\(node.address)/24", "dev", "eth0"])
            try Shell.must(exec + ["ip", "link", "set", "eth0", "up"])
            try Shell.must(exec + ["ip", "link", "set", "lo", "up"])
            // IPv4 only: the cut rules are iptables (IPv4) rules, and a link-local IPv6 address
            // would let traffic cross a partition.
            for interface in ["all", "default", "eth0", "lo"] {
                try Shell.must(exec + ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/\(interface)/disable_ipv6"])
            }
            // One chain for the lab's rules, consulted for traffic in and out of the node.
            try Shell.must(exec + ["iptables", "-N", chain])
            try Shell.must(exec + ["iptables", "-A", "INPUT", "-j", chain])
            try Shell.must(exec + ["iptables", "-A", "OUTPUT", "-j", chain])
            // And one for the redirects to delay relays.
            try Shell.must(exec + ["iptables", "-t", "nat", "-N", delayChain])
            try Shell.must(exec + ["iptables", "-t", "nat", "-A", "OUTPUT", "-j", delayChain])
        }
    }

    /// Rewrites every namespace's chain from the state's cuts: a cut A → B drops, in A, what
    /// goes to B and, in B, what comes from A (new and established connections alike). One
    /// `iptables-restore` per namespace replaces its chain at once: a rule per command took a
    /// few hundred milliseconds for an isolation, which stretched a 300 ms blip well beyond that.
    private static func applyCuts(_ state: LabState) throws(LabError) {
        for node in state.nodes {
            var rules = ["*filter", "-F \(chain)"]
            for cut in state.cuts {
                if cut.from == node.name, let target = state.node(cut.to) { rules.append("-A \(chain) -d \(target.address) -j DROP") }
                if cut.to == node.name, let source = state.node(cut.from) { rules.append("-A \(chain) -s \(source.address) -j DROP") }
            }
            rules.append("COMMIT")
            try Shell.must(["ip", "netns", "exec", node.namespace, "iptables-restore", "--noflush"], input: rules.joined(separator: "\n") + "\n")
        }
    }

    // MARK: - Agents

    private static func startAgent(_ state: LabState, _ node: LabState.Node) throws(LabError) -> Int32 {
        try spawn(in: node.namespace, [state.binary(of: node), "agent", "--config", state.configPath, "--node", node.name],
                  log: state.logPath(of: node.name), what: "the agent of \(node.name)")
    }

    /// Starts `arguments` inside `namespace`, output appended to `log`. `ip netns exec` enters
    /// the namespace and execs the program, so the PID is the program's. (Foundation starts
    /// children in their own process group: a Ctrl-C in the shell that ran `lab up` does not
    /// reach them.)
    private static func spawn(in namespace: String, _ arguments: [String], log: String, what: String) throws(LabError) -> Int32 {
        guard let ip = Shell.locate("ip") else { throw LabError("ip is missing (iproute2)") }
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = ["netns", "exec", namespace] + arguments
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            handle.seekToEndOfFile()
            process.standardOutput = handle
            process.standardError = handle
            process.standardInput = FileHandle.nullDevice
            try process.run()
        } catch {
            throw LabError("cannot start \(what): \(error)")
        }
        return process.processIdentifier
    }

    /// True when `pid` is a live (not zombie) agent of this lab, not a recycled PID.
    static func isAgent(_ pid: Int32, of state: LabState) -> Bool {
        liveCommandLine(pid)?.contains("agent --config \(state.configPath)") ?? false
    }

    /// The command line of a live (not zombie) process, arguments joined by spaces.
    private static func liveCommandLine(_ pid: Int32) -> String? {
        guard let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), processState(pid) != "Z" else { return nil }
        return String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }

    /// The one-letter state from /proc/PID/stat (R, S, T, Z…), nil when the process is gone.
    static func processState(_ pid: Int32) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ").first.map(String.init)
    }

    private static func waitForExit(_ pid: Int32, within limit: Duration = .seconds(10)) {
        let deadline = ContinuousClock.now + limit
        while let state = processState(pid), state != "Z", ContinuousClock.now < deadline { usleep(5_000) }
        // Reap it if it was our child (a lab started in this process).
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    // MARK: - Files

    /// Where a lab outside its own directory keeps the nodes' data (`/var/lib/pgquorum-lab/<id>`).
    static func outsideDataDirectory(id: String) -> String { "/var/lib/pgquorum-lab/\(id)" }

    /// Removes the nodes' data kept outside the lab directory, and the link to it; returns it.
    /// Only the directory this lab's own id names (a hex id: lab.json cannot point it elsewhere).
    @discardableResult
    static func removeOutsideData(_ state: LabState) -> String? {
        guard let data = state.dataDirectory, !state.id.isEmpty, state.id.allSatisfy(\.isHexDigit),
              data == outsideDataDirectory(id: state.id), FileManager.default.fileExists(atPath: data) else { return nil }
        try? FileManager.default.removeItem(atPath: data)
        try? FileManager.default.removeItem(atPath: state.directory + "/data")
        return data
    }

    /// `<dir>/data` serves when PostgreSQL's OS user can enter the lab directory and the socket
    /// paths fit; a private clone (mode 0700, as under /root or from `mktemp -d`) or a deep path
    /// gets the outside directory instead. Nil: `<dir>/data`.
    static func outsideDataDirectoryIfNeeded(for directory: String, id: String, nodes: [NodeConfig]) -> String? {
        let socketsFit = nodes.allSatisfy { node in
            NodeConfig.postgresSocketPath(dataDirectory: directory + "/data/" + node.name, port: 5432).utf8.count <= NodeConfig.maximumSocketPathBytes
        }
        let blocked = OSUser.named(PostgresSettings().osUser).flatMap { $0.firstBlockedDirectory(on: directory) }
        // An agent running as root keeps its state only under directories root alone controls (a
        // clone owned by a user, run with sudo, is not).
        let parent = URL(fileURLWithPath: directory).deletingLastPathComponent().path
        let othersControl = geteuid() == 0 && UserOwnedFile.firstDirectoryOthersControl(on: parent) != nil
        return blocked == nil && socketsFit && !othersControl ? nil : outsideDataDirectory(id: id)
    }

    /// Makes the data root, mode 0755 so that PostgreSQL's OS user reaches `<root>/<node>/postgres`
    /// (each agent makes its own node directory 0711); an outside root is linked from `<dir>/data`.
    private static func createDataRoot(_ state: LabState) throws(LabError) {
        do {
            try FileManager.default.createDirectory(atPath: state.dataRoot, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
            chmod(state.dataRoot, 0o755)
            if let outside = state.dataDirectory {
                chmod(URL(fileURLWithPath: outside).deletingLastPathComponent().path, 0o755)
                try FileManager.default.createSymbolicLink(atPath: state.directory + "/data", withDestinationPath: outside)
            }
        } catch {
            throw LabError("cannot create the nodes' data directory \(state.dataRoot): \(error.localizedDescription)")
        }
    }

    /// `<data root>/pgpass`: a random password for the superuser and one for the replication
    /// user, readable by PostgreSQL's OS user only (libpq ignores a passfile others can read).
    private static func writePassfile(_ state: LabState) throws(LabError) -> String {
        let path = state.dataRoot + "/pgpass"
        let settings = PostgresSettings()
        func password() -> String {
            let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
            return String((0..<24).map { _ in alphabet.randomElement() ?? "x" })
        }
        let text = "# Written by `pgquorum lab up`: host:port:database:user:password\n"
            + "*:*:*:\(settings.superuser):\(password())\n*:*:*:\(settings.replicationUser):\(password())\n"
        // Created private (never readable by others, not even for a moment), then given away.
        let file = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw LabError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(file) }
        let bytes = Array(text.utf8)
        guard write(file, bytes, bytes.count) == bytes.count else { throw LabError("cannot write \(path): \(String(cString: strerror(errno)))") }
        if let user = OSUser.named(settings.osUser), fchown(file, user.uid, user.gid) != 0 {
            throw LabError("cannot give \(path) to \(user.name): \(String(cString: strerror(errno)))")
        }
        return path
    }

    private static func writeConfig(_ options: Options, state: LabState) throws(LabError) {
        var yaml = """
        # Written by `pgquorum lab up`: the lab's nodes at their namespace addresses.
        cluster: \(options.cluster)
        tls:
          dir: tls
        data_dir: \(state.dataDirectory ?? "data")
        # Plain-HTTP load-balancer checks (HAProxy's httpchk) next to the TLS API.
        api:
          health_port: \(NodeConfig.defaultHealthPort)
        timing:
          heartbeat_ms: \(options.timing.heartbeatMilliseconds)
          election_timeout_ms: \(options.timing.electionTimeoutMilliseconds)

        """
        if options.postgres {
            // The seed's settings with a lab-sized memory; the nodes authenticate with passwords
            // of their own; clients in the host namespace (the bridge address) may connect as any user.
            let passfile = try writePassfile(state)
            yaml += """
            postgresql:
              passfile: \(passfile)
              hba: ["host all all \(state.hostAddress)/32 trust"]
              # A rehearsal: a node that cannot rewind is cloned afresh (its old data moved aside).
              allow_reclone: true
              parameters:
                shared_buffers: 64MB
                effective_cache_size: 256MB

            """
        }
        yaml += "nodes:\n"
        for (node, labNode) in zip(options.nodes, state.nodes) {
            yaml += """
              - name: \(node.name)
                label: \(quoted(node.label))
                location: \(quoted(node.location))
                host: \(labNode.address)
                agent_port: \(NodeConfig.defaultAgentPort)
                api_port: \(NodeConfig.defaultAPIPort)
                priority: \(node.priority)\(node.noFailover ? "\n    tags: {nofailover: true}" : "")\(options.postgres ? "\n    postgres_port: 5432" : "")

            """
        }
        do {
            try yaml.write(toFile: state.configPath, atomically: true, encoding: .utf8)
            _ = try ClusterCertificates.create(
                cluster: options.cluster, nodes: zip(options.nodes, state.nodes).map { NodeIdentity(name: $0.name, hosts: [$1.address]) },
                directory: state.directory + "/tls")
        } catch {
            throw LabError("cannot write the lab's config or certificates in \(state.directory): \(error)")
        }
        do {
            _ = try ConfigLoader.load(path: state.configPath)
        } catch {
            throw LabError("the lab wrote an invalid config: \(error)")
        }
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    private static func save(_ state: LabState) throws(LabError) {
        do { try state.save() } catch { throw LabError("cannot write \(state.statePath): \(error.localizedDescription)") }
    }

    /// Appends one line to `<dir>/events.jsonl`: the time (UTC, milliseconds), the action, the
    /// nodes and a detail. The workload checker lines these up with what the clients saw.
    static func event(_ state: LabState, _ action: String, nodes: [String], detail: String) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let record: [String: Any] = ["time": formatter.string(from: Date()), "action": action, "nodes": nodes, "detail": detail]
        guard var line = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        line.append(0x0a)
        // One write with O_APPEND: concurrent writers never interleave inside a line.
        let descriptor = open(state.eventLogPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return }
        _ = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
    }

    // MARK: - Checks, the lab lock and the subnet registry

    /// Serialises lab commands on one lab (two at once would undo each other's changes to
    /// lab.json): an exclusive lock on `<dir>/lab.lock`, released when the descriptor closes.
    private static func lockLab(_ directory: String) throws(LabError) -> Int32 {
        try requireRoot()
        let path = directory + "/lab.lock"
        guard FileManager.default.fileExists(atPath: directory + "/lab.json") else {
            _ = try LabState.load(directory: directory)
            return -1
        }
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw LabError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX) == 0 else {
            close(descriptor)
            throw LabError("cannot lock \(path): \(String(cString: strerror(errno)))")
        }
        return descriptor
    }

    private static func requireRoot() throws(LabError) {
        guard geteuid() == 0 else {
            throw LabError("the lab needs root (it creates network namespaces and firewall rules); run it with sudo")
        }
    }

    private static func requireNodes(_ names: [String], in state: LabState) throws(LabError) {
        for name in names where state.node(name) == nil {
            throw LabError("no node \(name) in this lab (its nodes: \(state.nodes.map(\.name).joined(separator: ", ")))")
        }
    }

    private static func nodeIndex(_ name: String, in state: LabState) throws(LabError) -> Int {
        guard let index = state.nodes.firstIndex(where: { $0.name == name }) else {
            throw LabError("no node \(name) in this lab (its nodes: \(state.nodes.map(\.name).joined(separator: ", ")))")
        }
        return index
    }

    /// Claims a free 10.213.<n>.0/24 for this lab: a file per subnet under /run/pgquorum-lab,
    /// created exclusively, naming the lab's directory. A file whose lab is gone is reclaimed.
    private static func reserveSubnet(for directory: String) throws(LabError) -> Int {
        try? FileManager.default.createDirectory(atPath: registry, withIntermediateDirectories: true)
        for subnet in 1...250 {
            let path = "\(registry)/\(subnet)"
            // A claim is stale once its lab is down (lab.json.down) or its directory is gone; a
            // directory without lab.json yet is a lab being created right now.
            if let owner = try? String(contentsOfFile: path, encoding: .utf8) {
                let directory = owner.trimmingCharacters(in: .whitespacesAndNewlines)
                let gone = !FileManager.default.fileExists(atPath: directory)
                    || (FileManager.default.fileExists(atPath: directory + "/lab.json.down")
                        && !FileManager.default.fileExists(atPath: directory + "/lab.json"))
                if gone { try? FileManager.default.removeItem(atPath: path) }
            }
            // Written whole under a private name, then linked into place: link() fails if the
            // name exists, and a reader never sees an empty claim.
            let claim = "\(registry)/.claim-\(getpid())-\(subnet)"
            guard (try? directory.write(toFile: claim, atomically: false, encoding: .utf8)) != nil else {
                throw LabError("cannot write to \(registry)")
            }
            defer { unlink(claim) }
            if link(claim, path) == 0 { return subnet }
        }
        throw LabError("250 labs are registered in \(registry); take some down with `pgquorum lab down --dir DIR`")
    }

    /// Frees the subnet if this lab still holds it (another lab may have it by now).
    private static func releaseSubnet(_ subnet: Int, of directory: String) {
        let path = "\(registry)/\(subnet)"
        guard let owner = try? String(contentsOfFile: path, encoding: .utf8),
              owner.trimmingCharacters(in: .whitespacesAndNewlines) == directory else { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}

extension Lab {
    /// Waits (bounded) until every running agent names the same leader in its own view; the
    /// leader's name, or nil.
    public static func waitForLeader(_ state: LabState, within seconds: Double = 30) async -> String? {
        guard let client = try? APIClient(tlsDirectory: state.directory + "/tls") else { return nil }
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            let running = agentStates(state).filter { $0.value == "running" }.map(\.key)
            var leaders: [String?] = []
            for name in running {
                guard let node = state.node(name),
                      let answer = try? await client.get(host: node.address, port: NodeConfig.defaultAPIPort,
                                                         path: "/cluster?stale=true", timeout: .seconds(1)),
                      answer.status == 200,
                      let view = try? JSONDecoder().decode(ClusterView.self, from: Data(answer.body)) else { leaders.append(nil); continue }
                leaders.append(view.leader)
            }
            if let first = leaders.first, let leader = first, leaders.allSatisfy({ $0 == leader }) { return leader }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }
}
