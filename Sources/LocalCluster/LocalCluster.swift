import Agent
import ClusterCertificates
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Real `pgquorum agent` processes on loopback, for tests and benchmarks: a temp directory with a
/// config, certificates from the cluster CA, and one process per node. Every process it starts is
/// stopped by PID when the cluster is torn down. Not thread-safe: one task drives it.
public final class LocalCluster: @unchecked Sendable {
    public let directory: String
    public let names: [String]
    public let configPath: String
    public private(set) var apiPorts: [String: Int] = [:]
    /// PostgreSQL's port on each node (empty when the cluster runs without PostgreSQL).
    public private(set) var postgresPorts: [String: Int] = [:]
    private var processes: [String: Process] = [:]
    private let client: APIClient
    private let binary: String

    /// The `pgquorum` binary next to the running executable (the test bundle or pgquorum-bench),
    /// else in the repository's debug build folder.
    public static func defaultBinary(filePath: String = #filePath) -> String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("pgquorum").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        let repository = URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return repository.appendingPathComponent(".build/debug/pgquorum").path
    }

    /// With `postgres`, every node runs a real PostgreSQL server on loopback, managed by its
    /// agent (small memory settings; trust for the cluster's own address). `postgresParameters`
    /// are added to `postgresql.parameters`; `postgresSettings` are further lines of the
    /// `postgresql` section.
    public init(nodes count: Int, heartbeatMilliseconds: Int = 50, electionTimeoutMilliseconds: Int = 500,
                postgres: Bool = false, postgresSettings: String = "", postgresParameters: [String: String] = [:],
                extraConfig: String = "", binary: String = LocalCluster.defaultBinary()) throws {
        self.binary = binary
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgq-agents-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        names = (1...count).map { "node\($0)" }
        // The PostgreSQL user (under root) must reach each node's data directory.
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        let perNode = postgres ? 3 : 2
        let ports = try LocalCluster.freePorts(perNode * count)
        var yaml = """
        cluster: test
        tls:
          dir: tls
        data_dir: data
        timing:
          heartbeat_ms: \(heartbeatMilliseconds)
          election_timeout_ms: \(electionTimeoutMilliseconds)

        """
        if postgres {
            let defaults = ["shared_buffers": "16MB", "effective_cache_size": "64MB", "wal_buffers": "1MB", "max_wal_size": "64MB", "fsync": "off"]
            yaml += "postgresql:\n  parameters:\n"
            for (name, value) in defaults.merging(postgresParameters, uniquingKeysWith: { $1 }).sorted(by: { $0.key < $1.key }) {
                yaml += "    \(name): \"\(value)\"\n"
            }
            yaml += postgresSettings
            // Tests run without passwords unless they bring a passfile: say so, as a lab must.
            if !postgresSettings.contains("passfile:") { yaml += "  insecure_trust: true\n" }
        }
        yaml += extraConfig + "nodes:\n"
        for (position, name) in names.enumerated() {
            apiPorts[name] = ports[perNode * position + 1]
            yaml += """
              - name: \(name)
                label: Site \(position + 1)
                location: loopback
                host: 127.0.0.1
                agent_port: \(ports[perNode * position])
                api_port: \(ports[perNode * position + 1])
                priority: \(position)

            """
            if postgres {
                postgresPorts[name] = ports[perNode * position + 2]
                yaml += "    postgres_port: \(ports[perNode * position + 2])\n"
            }
        }
        configPath = directory + "/cluster.yaml"
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        _ = try ClusterCertificates.create(cluster: "test", nodes: names.map { NodeIdentity(name: $0, hosts: ["127.0.0.1"]) },
                                           directory: directory + "/tls", validity: 86_400, now: Date())
        // The operator certificate `create` made: reads work also where the agents require one.
        client = try APIClient(tlsDirectory: directory + "/tls", operator: "admin")
    }

    deinit { tearDown() }

    public func tearDown() {
        for process in processes.values where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        processes = [:]
        // Their postmasters stop on the agents' death (SIGQUIT): give them a moment to go.
        if !postgresPorts.isEmpty { usleep(500_000) }
        if ProcessInfo.processInfo.environment["PGQUORUM_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    // MARK: Processes

    /// Starts `name`'s agent. With `tlsDirectory`, the agent reads a copy of the config whose
    /// `tls.dir` points there (as on a machine that holds only its own key pair).
    public func start(_ name: String, tlsDirectory: String? = nil, environment: [String: String] = [:]) throws {
        var config = configPath
        if let tlsDirectory {
            config = directory + "/cluster-\(name).yaml"
            let text = try String(contentsOfFile: configPath, encoding: .utf8)
                .replacingOccurrences(of: "  dir: tls\n", with: "  dir: \(tlsDirectory)\n")
            try text.write(toFile: config, atomically: true, encoding: .utf8)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["agent", "--config", config, "--node", name]
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let log = directory + "/\(name).log"
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        processes[name] = process
    }

    public func startAll() throws { for name in names { try start(name) } }

    /// Sends `signal` and waits (bounded) for the process to exit; returns its exit status.
    @discardableResult
    public func stop(_ name: String, signal: Int32 = SIGKILL, within seconds: Double = 10) -> Int32? {
        guard let process = processes[name] else { return nil }
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            processes[name] = nil
            return nil
        }
        processes[name] = nil
        return process.terminationStatus
    }

    public func log(of name: String) -> String {
        (try? String(contentsOfFile: directory + "/\(name).log", encoding: .utf8)) ?? ""
    }

    /// libpq connection string to a node's PostgreSQL over TCP, as the superuser.
    public func conninfo(of name: String) -> String {
        "host=127.0.0.1 port=\(postgresPorts[name] ?? 0) user=postgres dbname=postgres connect_timeout=2"
    }

    public var running: [String] { names.filter { processes[$0]?.isRunning == true } }

    /// The process ID of a running node's agent.
    public func pid(of name: String) -> Int32? {
        guard let process = processes[name], process.isRunning else { return nil }
        return process.processIdentifier
    }

    // MARK: Asking the agents

    public func view(of name: String, stale: Bool = true) async -> ClusterView? {
        guard let port = apiPorts[name] else { return nil }
        let path = stale ? "/cluster?stale=true" : "/cluster"
        guard let answer = try? await client.get(host: "127.0.0.1", port: port, path: path, timeout: .seconds(2)),
              answer.status == 200 else { return nil }
        return try? JSONDecoder().decode(ClusterView.self, from: Data(answer.body))
    }

    /// A GET on a node's API: status and body (nil when it did not answer).
    public func get(_ name: String, path: String) async -> (status: Int, body: String)? {
        guard let port = apiPorts[name],
              let answer = try? await client.get(host: "127.0.0.1", port: port, path: path, timeout: .seconds(2)) else { return nil }
        return (answer.status, String(decoding: answer.body, as: UTF8.self))
    }

    public func status(of name: String, path: String, method: String = "GET") async -> Int? {
        guard let port = apiPorts[name] else { return nil }
        return try? await client.request(method, host: "127.0.0.1", port: port, path: path, timeout: .seconds(2)).status
    }

    /// Waits until every node in `among` names the same leader (one of `among`) in its local
    /// view; nil if that does not happen within `seconds`.
    public func agreedLeader(among: [String]? = nil, within seconds: Double = 20,
                             poll: Duration = .milliseconds(100)) async -> (name: String, term: UInt64)? {
        let nodes = among ?? running
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            var views: [ClusterView] = []
            for node in nodes { if let view = await view(of: node) { views.append(view) } }
            if views.count == nodes.count, let leader = views.first?.leader, nodes.contains(leader),
               views.allSatisfy({ $0.leader == leader && $0.term == views[0].term }) {
                return (leader, views[0].term)
            }
            try? await Task.sleep(for: poll)
        }
        return nil
    }

    /// Runs `pgquorum` with `arguments`; returns exit status and standard output (and standard
    /// error after it, with `includeErrors`).
    public func run(_ arguments: [String], environment: [String: String] = [:],
                    includeErrors: Bool = false) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in environment { variables[key] = value }
        process.environment = variables
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = includeErrors ? pipe : FileHandle.nullDevice
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// A TCP connection to `port` on 127.0.0.1 (a descriptor the caller closes), or nil: for
    /// clients that must speak raw bytes, or say nothing at all.
    public static func connectLoopback(port: Int) -> Int32? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            return nil
        }
        return descriptor
    }

    /// Ports the kernel hands out for port 0 right now (bound together, then released).
    public static func freePorts(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for socket in sockets { close(socket) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw POSIXError(.EMFILE) }
            sockets.append(descriptor)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
            }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
