import Agent
import ClusterConfig
import Foundation
import Lab
import LocalCluster
import NIOPosix
import PeerTransport
import PostgresControl
import RaftCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real labs: network namespaces, a bridge, iptables, real agents. They need root, as CI has;
/// without it they fail with the lab's own one-line reason rather than pass by skipping.
@Suite(.serialized) struct LabTests {
    /// A lab in a temp directory, torn down when the test ends (on failure too).
    final class TestLab: @unchecked Sendable {
        let directory: String
        /// A mode-0700 directory holding the lab, as a clone under /root or from `mktemp -d` is.
        let privateParent: String?
        var state: LabState
        let client: APIClient

        /// `parentOwner`: the lab lives in a directory (mode 0755) that user owns, as a user's clone
        /// run with sudo does.
        init(nodes: [NodeConfig], cluster: String, postgres: Bool = false, inPrivateDirectory: Bool = false,
             parentOwner: uid_t? = nil) async throws {
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pgq-lab-\(UUID().uuidString.prefix(8))").path
            if inPrivateDirectory || parentOwner != nil {
                try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: inPrivateDirectory ? 0o700 : 0o755])
                if let parentOwner { chown(scratch, parentOwner, gid_t(parentOwner)) }
                privateParent = scratch
                directory = scratch + "/lab"
            } else {
                privateParent = nil
                directory = scratch
            }
            state = try await Lab.up(Lab.Options(directory: directory, nodes: nodes, cluster: cluster, binary: LocalCluster.defaultBinary(),
                                                 postgres: postgres))
            client = try APIClient(tlsDirectory: directory + "/tls")
        }

        func tearDown() {
            _ = try? Lab.down(directory: directory)
            if let privateParent { try? FileManager.default.removeItem(atPath: privateParent) }
        }

        func reload() throws { state = try LabState.load(directory: directory) }

        /// The agent log of `node`.
        func log(_ node: String) -> String {
            (try? String(contentsOfFile: directory + "/logs/\(node).log", encoding: .utf8)) ?? ""
        }

        func view(_ node: String) async -> ClusterView? {
            guard let address = state.node(node)?.address,
                  let answer = try? await client.get(host: address, port: NodeConfig.defaultAPIPort, path: "/cluster?stale=true", timeout: .seconds(1)),
                  answer.status == 200 else { return nil }
            return try? JSONDecoder().decode(ClusterView.self, from: Data(answer.body))
        }

        func leaderEndpoint(_ node: String) async -> Int? {
            guard let address = state.node(node)?.address else { return nil }
            return try? await client.get(host: address, port: NodeConfig.defaultAPIPort, path: "/leader", timeout: .seconds(1)).status
        }

        /// Waits until every node of `among` names the same leader, which is one of `among`.
        func agreedLeader(among nodes: [String], within seconds: Double = 20) async -> (name: String, term: UInt64)? {
            let deadline = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < deadline {
                var views: [ClusterView] = []
                for node in nodes { if let view = await view(node) { views.append(view) } }
                if views.count == nodes.count, let leader = views[0].leader, nodes.contains(leader),
                   views.allSatisfy({ $0.leader == leader && $0.term == views[0].term }) {
                    return (leader, views[0].term)
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return nil
        }

        func status(_ node: String, _ path: String) async -> Int? {
            guard let address = state.node(node)?.address else { return nil }
            return try? await client.get(host: address, port: NodeConfig.defaultAPIPort, path: path, timeout: .seconds(1)).status
        }

        /// The nodes answering 200 on `path`, polled until `condition` holds (bounded).
        func answering(_ path: String, among nodes: [String], within seconds: Double, until condition: ([String]) -> Bool) async -> [String] {
            let deadline = ContinuousClock.now + .seconds(seconds)
            var found: [String] = []
            repeat {
                found = []
                for node in nodes where await status(node, path) == 200 { found.append(node) }
                if condition(found) { return found }
                try? await Task.sleep(for: .milliseconds(100))
            } while ContinuousClock.now < deadline
            return found
        }

        /// libpq connection string to a node's PostgreSQL from the host namespace.
        func conninfo(_ node: String) -> String {
            "host=\(state.node(node)?.address ?? "") port=5432 user=postgres dbname=postgres connect_timeout=1"
        }

        var events: [String] {
            ((try? String(contentsOfFile: state.eventLogPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
    }

    @Test func threeDataCentresSurviveIsolationCutsAndFreezes() async throws {
        let lab = try await TestLab(nodes: Lab.seedNodes, cluster: "lab-3dc")
        defer { lab.tearDown() }
        let names = Lab.seedNodes.map(\.name)
        let first = try #require(await lab.agreedLeader(among: names), "no leader in the lab")

        // Namespaces and addresses are real: each node's view names its peers at lab addresses.
        let view = try #require(await lab.view(first.name))
        #expect(Set(view.members.map(\.host)) == Set(lab.state.nodes.map(\.address)))

        // Isolating the leader: it loses its lease; the other two elect a new leader. Polled all
        // the while: never do two nodes answer /leader with 200 (hold a lease) at once.
        try Lab.isolate(directory: lab.directory, node: first.name)
        let majority = names.filter { $0 != first.name }
        var overlaps: [[String]] = []
        let watchUntil = ContinuousClock.now + .seconds(4)
        while ContinuousClock.now < watchUntil {
            var holders: [String] = []
            for name in names where await lab.leaderEndpoint(name) == 200 { holders.append(name) }
            if holders.count > 1 { overlaps.append(holders) }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(overlaps.isEmpty, "two lease holders at once: \(overlaps)")
        let second = try #require(await lab.agreedLeader(among: majority))
        #expect(second.name != first.name && second.term > first.term)
        #expect(await lab.leaderEndpoint(first.name) == 503, "the isolated old leader still claims the lease")

        // Heal: everyone converges on one leader.
        try Lab.heal(directory: lab.directory)
        let healed = try #require(await lab.agreedLeader(among: names))
        #expect(healed.term >= second.term)

        // An asymmetric cut from the leader to one follower: PreVote and leader contact keep the
        // cut-off follower from deposing a leader the other follower still hears.
        let follower = try #require(names.first { $0 != healed.name })
        try Lab.cut(directory: lab.directory, from: healed.name, to: follower)
        try await Task.sleep(for: .seconds(4))
        let others = names.filter { $0 != follower }
        let during = try #require(await lab.agreedLeader(among: others))
        #expect(during.name == healed.name && during.term == healed.term, "the cut follower disturbed the leader")
        try Lab.heal(directory: lab.directory)
        #expect(await lab.agreedLeader(among: names) != nil)

        // Freezing the leader's agent: the others take over; resumed, it follows.
        let frozen = try #require(await lab.agreedLeader(among: names))
        try Lab.pause(directory: lab.directory, node: frozen.name, resume: false)
        #expect(Lab.agentStates(try LabState.load(directory: lab.directory))[frozen.name] == "paused")
        let rest = names.filter { $0 != frozen.name }
        let successor = try #require(await lab.agreedLeader(among: rest))
        #expect(successor.name != frozen.name)
        try Lab.pause(directory: lab.directory, node: frozen.name, resume: true)
        // Woken after several election timeouts, the old leader's lease is long gone (checked
        // against the clock, not its stale ticks): it must not claim leadership.
        #expect(await lab.leaderEndpoint(frozen.name) == 503, "the resumed old leader claims the lease")
        let after = try #require(await lab.agreedLeader(among: names))
        #expect(after.term >= successor.term)

        // Kill and restart through the lab; every action is in the event log, in order.
        try Lab.kill(directory: lab.directory, node: names[2])
        #expect(Lab.agentStates(try LabState.load(directory: lab.directory))[names[2]] == "stopped")
        try Lab.restart(directory: lab.directory, node: names[2])
        #expect(await lab.agreedLeader(among: names) != nil)
        let actions = lab.events.compactMap { line -> String? in
            guard let data = line.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            return object["action"] as? String
        }
        #expect(actions == ["up", "partition", "heal", "cut", "heal", "pause", "resume", "kill", "restart"])

        // secondary2's key replayed from the host (the bridge address): the node it reaches
        // refuses the connection and says why; the key works from secondary2's address only.
        let target = try #require(lab.state.nodes.first { $0.name == names[0] })
        let thief = try TransportIdentity(cluster: "lab-3dc", node: names[2], directory: lab.directory + "/tls")
        let replay = PeerTransport(identity: thief, localID: NodeConfig.id(forName: names[2]),
                                   peers: [PeerTransport.Peer(id: NodeConfig.id(forName: names[0]), name: names[0],
                                                              host: target.address, port: NodeConfig.defaultAgentPort)],
                                   group: MultiThreadedEventLoopGroup.singleton, onMessage: { _ in })
        replay.send(Message(from: NodeConfig.id(forName: names[2]), to: NodeConfig.id(forName: names[0]), term: 1,
                            kind: .heartbeat(commit: 0, round: 1)))
        let refusal = "certificate of \(names[2]) presented from \(lab.state.hostAddress), not from its address"
        let deadline = ContinuousClock.now + .seconds(10)
        while !lab.log(names[0]).contains(refusal), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        await replay.shutdown()
        #expect(lab.log(names[0]).contains(refusal), "\(lab.log(names[0]).suffix(2_000))")
    }

    @Test func fiveNodesSplitTwoThreeOnlyTheMajorityLeads() async throws {
        let lab = try await TestLab(nodes: Lab.numberedNodes(5), cluster: "lab-5")
        defer { lab.tearDown() }
        let names = lab.state.nodes.map(\.name)
        _ = try #require(await lab.agreedLeader(among: names))
        // IPv6 is off inside the nodes: the cuts are IPv4 rules, link-local IPv6 would bypass them.
        for node in lab.state.nodes {
            let flag = try String(decoding: shell(["ip", "netns", "exec", node.namespace, "cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"]), as: UTF8.self)
            #expect(flag.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "IPv6 is on in \(node.namespace)")
        }
        let minority = Array(names.prefix(2)), majority = Array(names.suffix(3))
        // A node on two sides, or an unknown node, is refused before anything changes.
        #expect(throws: LabError.self) { try Lab.partition(directory: lab.directory, sides: [["node1", "node2"], ["node2", "node3"]]) }
        #expect(throws: LabError.self) { try Lab.partition(directory: lab.directory, sides: [["node1"], ["node9"]]) }
        try lab.reload()
        #expect(lab.state.cuts.isEmpty)
        try Lab.partition(directory: lab.directory, sides: [minority, majority])

        let leader = try #require(await lab.agreedLeader(among: majority))
        #expect(majority.contains(leader.name))
        // For several election timeouts, nobody on the minority side leads.
        let deadline = ContinuousClock.now + .seconds(4)
        while ContinuousClock.now < deadline {
            for node in minority {
                #expect(await lab.leaderEndpoint(node) == 503, "\(node) on the minority side claims leadership")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        try Lab.heal(directory: lab.directory)
        #expect(await lab.agreedLeader(among: names) != nil)
    }

    @Test func delayAddsLatencyBetweenTwoNodesUntilHealed() async throws {
        let lab = try await TestLab(nodes: Lab.numberedNodes(3), cluster: "lab-3")
        defer { lab.tearDown() }
        let names = lab.state.nodes.map(\.name)
        _ = try #require(await lab.agreedLeader(among: names))

        // node1's RTT to node2 as node1's agent measures it on its own link.
        func rtt(from a: String, to b: String) async -> Double? {
            await lab.view(a)?.members.first { $0.name == b }?.rttMilliseconds
        }
        func waitForRTT(from a: String, to b: String, _ condition: (Double) -> Bool) async -> Double? {
            let deadline = ContinuousClock.now + .seconds(15)
            var last: Double?
            while ContinuousClock.now < deadline {
                last = await rtt(from: a, to: b)
                if let last, condition(last) { return last }
                try? await Task.sleep(for: .milliseconds(200))
            }
            return nil
        }
        #expect(await waitForRTT(from: "node1", to: "node2") { $0 < 50 } != nil)

        try await Lab.delay(directory: lab.directory, between: "node1", and: "node2", milliseconds: 150)
        // 150 ms each way: a round trip over the relays takes at least 300 ms, both ways round.
        let delayed = await waitForRTT(from: "node1", to: "node2") { $0 >= 300 }
        let measured = await rtt(from: "node1", to: "node2")
        #expect(delayed != nil, "node1 → node2 RTT never reached 300 ms (last: \(String(describing: measured)))")
        #expect(await waitForRTT(from: "node2", to: "node1") { $0 >= 300 } != nil)
        // Links not delayed stay fast, and the cluster keeps one leader.
        #expect(await waitForRTT(from: "node1", to: "node3") { $0 < 50 } != nil)
        #expect(await lab.agreedLeader(among: names) != nil)

        try Lab.heal(directory: lab.directory)
        #expect(await waitForRTT(from: "node1", to: "node2") { $0 < 50 } != nil, "the delay outlived heal")
        try lab.reload()
        #expect(lab.state.delays.isEmpty)
    }

    @Test func downRemovesEverythingEvenAfterUpDied() async throws {
        let lab = try await TestLab(nodes: Lab.numberedNodes(3), cluster: "lab-3")
        let state = lab.state
        // As if the controlling process had crashed: only the directory tells what exists.
        let removed = try Lab.down(directory: lab.directory)
        #expect(removed.contains { $0.hasPrefix("bridge") })
        #expect(removed.filter { $0.hasPrefix("namespace") }.count == 3)
        let namespaces = try String(decoding: shell(["ip", "netns", "list"]), as: UTF8.self)
        #expect(!namespaces.contains("pq\(state.id)-"))
        for node in state.nodes {
            if let pid = node.agentPID { #expect(kill(pid, 0) != 0, "agent \(node.name) survived lab down") }
        }
        #expect(!FileManager.default.fileExists(atPath: lab.directory))
        // A second `down` says clearly there is nothing.
        #expect(throws: LabError.self) { try Lab.down(directory: lab.directory) }
        // `up` refuses a directory that holds an earlier lab's files.
        try FileManager.default.createDirectory(atPath: lab.directory, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: lab.directory + "/lab.json.down", contents: Data("{}".utf8))
        defer { try? FileManager.default.removeItem(atPath: lab.directory) }
        await #expect(throws: LabError.self) {
            try await Lab.up(Lab.Options(directory: lab.directory, nodes: Lab.numberedNodes(3), cluster: "x", binary: LocalCluster.defaultBinary()))
        }
    }

    private func shell(_ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return data
    }

    /// The seed's scenario 3 with PostgreSQL: the primary's node is cut off from both peers.
    /// Writes are tried on every node all along; the isolated primary must stop acknowledging
    /// before the majority's new primary acknowledges anything. After heal the old primary
    /// resynchronises (pg_rewind) and follows the new one.
    /// A user's clone run with sudo: the directory on the way belongs to that user, and agents
    /// running as root refuse such a data directory; the lab keeps the nodes' data outside.
    @Test func aLabInAUsersDirectoryKeepsItsDataWhereOnlyRootWrites() async throws {
        let lab = try await TestLab(nodes: Lab.seedNodes, cluster: "lab-3dc", postgres: true, parentOwner: 65_534)
        defer { lab.tearDown() }
        let outside = try #require(lab.state.dataDirectory, "a lab in a user's directory kept its data inside it")
        #expect(outside.hasPrefix("/var/lib/pgquorum-lab/"))
        let primaries = await lab.answering("/primary", among: Lab.seedNodes.map(\.name), within: 120) { $0.count == 1 }
        #expect(primaries.count == 1, "no primary: \(primaries)")
    }

    /// The lab lives in a mode-0700 directory that the `postgres` user cannot enter (a newcomer's
    /// clone): the nodes' data goes where it can, linked from `<dir>/data`, and `lab down` removes it.
    @Test func anIsolatedPrimaryIsFencedBeforeTheMajorityPromotes() async throws {
        let lab = try await TestLab(nodes: Lab.seedNodes, cluster: "lab-3dc", postgres: true, inPrivateDirectory: true)
        defer { lab.tearDown() }
        let outside = try #require(lab.state.dataDirectory, "a lab in a private directory kept its data inside it")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: lab.directory + "/data") == outside)
        let names = Lab.seedNodes.map(\.name)
        let primaries = await lab.answering("/primary", among: names, within: 120) { $0.count == 1 }
        try #require(primaries.count == 1, "no single primary: \(primaries)")
        #expect(FileManager.default.fileExists(atPath: lab.state.postgresDirectory(of: primaries[0]) + "/PG_VERSION"))
        let old = primaries[0]
        let majority = names.filter { $0 != old }
        try PostgresConnection(lab.conninfo(old)).query("CREATE TABLE writes (id bigint PRIMARY KEY, node text)")
        let streaming = await lab.answering("/replica", among: majority, within: 60) { $0.count == 2 }
        try #require(streaming.count == 2, "replicas not streaming: \(streaming)")

        var connections: [String: PostgresConnection] = [:]
        func write(_ id: Int, on node: String) -> Bool {
            if connections[node] == nil { connections[node] = try? PostgresConnection(lab.conninfo(node)) }
            guard let connection = connections[node] else { return false }
            do {
                try connection.query("INSERT INTO writes VALUES (\(id), '\(node)')")
                return true
            } catch {
                if error.sqlState == nil { connections[node] = nil }
                return false
            }
        }
        #expect(write(0, on: old))
        try Lab.isolate(directory: lab.directory, node: old)
        let isolatedAt = ContinuousClock.now
        var lastOldWrite: ContinuousClock.Instant?
        var firstNewWrite: (node: String, at: ContinuousClock.Instant)?
        var id = 1
        let deadline = ContinuousClock.now + .seconds(30)
        while firstNewWrite == nil || ContinuousClock.now < firstNewWrite!.at + .seconds(2), ContinuousClock.now < deadline {
            id += 1
            if write(id, on: old) { lastOldWrite = .now }
            for node in majority {
                id += 1
                if write(id, on: node), firstNewWrite == nil { firstNewWrite = (node, .now) }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let successor = try #require(firstNewWrite, "the majority promoted nobody within 30 s")
        if let lastOldWrite {
            #expect(lastOldWrite < successor.at, "the isolated primary acknowledged a write after \(successor.node) did")
            print("isolated primary's last write \(lastOldWrite - isolatedAt) after the cut; first write on \(successor.node) after \(successor.at - isolatedAt)")
        }
        #expect(await lab.status(old, "/primary") == 503)

        // Heal: the old primary rejoins as a replica and receives the new primary's writes.
        try Lab.heal(directory: lab.directory)
        let marker = 1_000_000
        #expect(write(marker, on: successor.node))
        let deadlineRejoin = ContinuousClock.now + .seconds(60)
        var rejoined = false
        while !rejoined, ContinuousClock.now < deadlineRejoin {
            if let connection = try? PostgresConnection(lab.conninfo(old)),
               (try? connection.value("SELECT count(*) FROM writes WHERE id = \(marker)")) == "1" { rejoined = true }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(rejoined, "the old primary did not rejoin after heal")
        #expect(await lab.answering("/replica", among: [old], within: 30) { $0 == [old] } == [old])
        lab.tearDown()
        #expect(!FileManager.default.fileExists(atPath: outside), "lab down left the nodes' data in \(outside)")
    }
}

@Suite struct LabWithoutRootTests {
    /// `lab up` as an unprivileged user: one line saying root is needed, nothing created.
    @Test func labUpWithoutRootSaysSo() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pgq-lab-nonroot-\(UUID().uuidString.prefix(8))").path
        let directory = scratch + "/lab"
        // A copy the unprivileged user can run wherever the checkout lives.
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let binary = scratch + "/pgquorum"
        try FileManager.default.copyItem(atPath: LocalCluster.defaultBinary(), toPath: binary)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: binary)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", binary, "lab", "up", "--dir", directory]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        #expect(output.contains("the lab needs root"), "\(output)")
        #expect(output.split(separator: "\n").count == 1, "\(output)")
        #expect(!FileManager.default.fileExists(atPath: directory))
    }

}
