import Foundation
import LocalCluster
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `scripts/make-deb.sh` (what `make deb` runs) on the debug build: the package holds the agent,
/// the systemd unit and /etc/pgquorum; installed into a scratch root, the unit's command line
/// starts an agent that tells systemd it is ready once it joined its cluster, and stopping once
/// it gets SIGTERM (issue 22, item 2).
@Suite struct DebianPackageTests {
    private static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func thePackageInstallsAUnitWhoseCommandStartsAnAgent() throws {
        let scratch = NSTemporaryDirectory() + "pgq-deb-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let built = try run(Self.repository + "/scripts/make-deb.sh", ["--binary", LocalCluster.defaultBinary(), "--output", scratch,
                                                                      "--compression", "none", "--allow-dynamic-swift"])
        try #require(built.status == 0, "make-deb failed: \(built.output)")
        let package = try #require(built.output.split(separator: "\n").last.map(String.init))
        let version = try run(LocalCluster.defaultBinary(), ["--version"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let architecture = try run("/usr/bin/dpkg", ["--print-architecture"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(package.hasSuffix("pgquorum_\(version)_\(architecture).deb"))
        #expect(try run("/usr/bin/dpkg-deb", ["--field", package, "Version"]).output.trimmingCharacters(in: .whitespacesAndNewlines) == version)
        let depends = try run("/usr/bin/dpkg-deb", ["--field", package, "Depends"]).output
        for needed in ["postgresql-15", "libpq5", "libc6", "adduser"] { #expect(depends.contains(needed), "Depends lacks \(needed): \(depends)") }

        // Install into a scratch root.
        let root = scratch + "/root"
        #expect(try run("/usr/bin/dpkg-deb", ["-x", package, root]).status == 0)
        let control = scratch + "/control"
        #expect(try run("/usr/bin/dpkg-deb", ["-e", package, control]).status == 0)
        #expect(try String(contentsOfFile: control + "/conffiles", encoding: .utf8) == "/etc/pgquorum/pgquorum.env\n")
        for script in ["postinst", "prerm", "postrm"] {
            #expect(try run("/bin/sh", ["-n", control + "/" + script]).status == 0, "\(script) is not valid sh")
        }
        let unit = try String(contentsOfFile: root + "/lib/systemd/system/pgquorum.service", encoding: .utf8)
        let settings = Dictionary(unit.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains("=") }.map { line -> (String, String) in
            let parts = line.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), String(parts[1]))
        }, uniquingKeysWith: { first, _ in first })
        #expect(settings["Type"] == "notify")
        #expect(settings["KillMode"] == "mixed")
        #expect(settings["Restart"] == "on-failure")
        #expect(settings["User"] == "pgquorum")
        #expect(settings["NoNewPrivileges"] == "yes" && settings["ProtectSystem"] == "strict")
        #expect(settings["ReadWritePaths"] == "/var/lib/pgquorum")
        let execStart = try #require(settings["ExecStart"])
        let environment = try String(contentsOfFile: root + "/etc/pgquorum/pgquorum.env", encoding: .utf8)
        #expect(environment.contains("PGQUORUM_NODE=") && environment.contains("PGQUORUM_CONFIG=/etc/pgquorum/cluster.yaml"))

        // A one-node cluster (a witness) for the unit's command line, with the installed binary.
        let binary = root + "/usr/bin/pgquorum"
        let ports = try LocalCluster.freePorts(2)
        let config = scratch + "/cluster.yaml"
        try """
        cluster: packaged
        tls:
          dir: tls
        data_dir: data
        nodes:
          - name: only
            host: 127.0.0.1
            agent_port: \(ports[0])
            api_port: \(ports[1])
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let certs = try run(binary, ["certs", "init", "--config", config])
        try #require(certs.status == 0, "certs init: \(certs.output)")
        let expanded = execStart.replacingOccurrences(of: "${PGQUORUM_CONFIG}", with: config)
            .replacingOccurrences(of: "${PGQUORUM_NODE}", with: "only")
            .replacingOccurrences(of: "/usr/bin/pgquorum", with: binary)
        let words = expanded.split(separator: " ").map(String.init)
        #expect(words.dropFirst() == ["agent", "--config", config, "--node", "only"])

        // systemd's side: a datagram socket named by NOTIFY_SOCKET.
        let notifications = try NotifySocket(path: scratch + "/notify")
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: words[0])
        agent.arguments = Array(words.dropFirst())
        agent.environment = ProcessInfo.processInfo.environment.merging(["NOTIFY_SOCKET": notifications.path]) { $1 }
        agent.standardError = FileHandle.nullDevice
        try agent.run()
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        let ready = notifications.receive(within: .seconds(20)) { $0.contains("READY=1") }
        #expect(ready?.contains("STATUS=member of cluster packaged; leader only") == true, "no READY=1 within 20 s: \(ready ?? "nothing")")
        kill(agent.processIdentifier, SIGTERM)
        let stopping = notifications.receive(within: .seconds(10)) { $0.contains("STOPPING=1") }
        #expect(stopping != nil, "no STOPPING=1 after SIGTERM")
        agent.waitUntilExit()
        #expect(agent.terminationStatus == 0)
    }

    private func run(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}

/// The receiving end of sd_notify: an AF_UNIX datagram socket.
private final class NotifySocket {
    let path: String
    private let descriptor: Int32

    init(path: String) throws {
        self.path = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    /// The first message that satisfies `wanted` within the time, or nil.
    func receive(within limit: Duration, _ wanted: (String) -> Bool) -> String? {
        let deadline = ContinuousClock.now + limit
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while ContinuousClock.now < deadline {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { continue }
            let message = String(decoding: buffer[0..<count], as: UTF8.self)
            if wanted(message) { return message }
        }
        return nil
    }
}
