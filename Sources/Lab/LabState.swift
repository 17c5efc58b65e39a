import Foundation

/// Everything a lab made, on disk in `<dir>/lab.json`, so that `lab status`, the fault commands
/// and `lab down` work from any shell, and `lab down` can clean up after a crashed `lab up`. It is
/// written before anything is created and updated after every change.
public struct LabState: Codable, Sendable, Equatable {
    public struct Node: Codable, Sendable, Equatable {
        public var name: String
        public var namespace: String
        /// The host end of the node's veth pair (the other end is `eth0` inside the namespace).
        public var hostInterface: String
        public var address: String
        public var agentPID: Int32?
        /// SIGSTOPped by `lab pause`.
        public var paused: Bool
        /// The `pgquorum` binary this node's agent runs, when not the lab's (`lab up --binary
        /// NODE=PATH`, `lab upgrade`).
        public var binary: String?

        enum CodingKeys: String, CodingKey {
            case name, namespace, address, paused, binary
            case hostInterface = "host_interface"
            case agentPID = "agent_pid"
        }
    }

    /// Traffic dropped from `from` to `to` (a partition is a set of such cuts in both directions).
    public struct Cut: Codable, Sendable, Equatable, Hashable {
        public var from: String
        public var to: String
    }

    /// Added latency on the link between `a` and `b`, in both directions, carried out by one
    /// relay process in each of the two namespaces.
    public struct Delay: Codable, Sendable, Equatable {
        public var a: String
        public var b: String
        public var milliseconds: Int
        public var relayPIDs: [Int32]

        enum CodingKeys: String, CodingKey {
            case a, b, milliseconds
            case relayPIDs = "relay_pids"
        }

        func joins(_ x: String, _ y: String) -> Bool { (a == x && b == y) || (a == y && b == x) }
    }

    /// Short random hex, the prefix of every name the lab creates (`pq<id>-…`).
    public var id: String
    public var directory: String
    public var bridge: String
    /// The third octet of the lab's subnet 10.213.<subnet>.0/24.
    public var subnet: Int
    public var hostAddress: String
    public var nodes: [Node]
    public var cuts: [Cut]
    public var delays: [Delay]
    /// The `pgquorum` binary the agents run.
    public var binary: String
    /// Where the nodes' data directories live when not in `<dir>/data` (a lab directory that
    /// PostgreSQL's OS user cannot enter); `<dir>/data` then links there. Nil: `<dir>/data`.
    public var dataDirectory: String?

    enum CodingKeys: String, CodingKey {
        case id, directory, bridge, subnet, nodes, cuts, delays, binary
        case hostAddress = "host_address"
        case dataDirectory = "data_directory"
    }

    /// The directory holding every node's data directory (`<root>/<node>`).
    public var dataRoot: String { dataDirectory ?? directory + "/data" }
    /// The node's PostgreSQL data directory.
    public func postgresDirectory(of node: String) -> String { dataRoot + "/\(node)/postgres" }

    public var configPath: String { directory + "/cluster.yaml" }
    public var statePath: String { directory + "/lab.json" }
    public var eventLogPath: String { directory + "/events.jsonl" }
    public func logPath(of node: String) -> String { directory + "/logs/\(node).log" }

    public func node(_ name: String) -> Node? { nodes.first { $0.name == name } }
    /// The binary a node's agent runs.
    public func binary(of node: Node) -> String { node.binary ?? binary }

    func save() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: URL(fileURLWithPath: statePath), options: .atomic)
    }

    public static func load(directory: String) throws(LabError) -> LabState {
        let path = directory + "/lab.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LabError("no lab in \(directory) (\(path) does not exist); start one with `pgquorum lab up --dir \(directory)`")
        }
        do {
            return try JSONDecoder().decode(LabState.self, from: data)
        } catch {
            throw LabError("\(path) is damaged (\(error)); remove the lab's namespaces by hand: `ip netns list | grep ^pq`")
        }
    }
}

/// One line that says what went wrong in the lab and what to do.
public struct LabError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
