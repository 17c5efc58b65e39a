import ClusterConfig
import Foundation
import Lab
import LocalCluster
import PostgresControl
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// HAProxy in front of the lab, configured as a user migrating from Patroni would: the write
/// pool checked with `OPTIONS /primary` over plain HTTP (`health_port`) and with `GET /primary`
/// over TLS (the API), the read pool with `GET /replica`. The primary is killed under load:
/// writes must resume through both write pools on the new primary, and the read pool must never
/// empty (issue 22, item 4).
extension LabTests {
    @Test func haproxyRoutesWritesAndReadsThroughAFailover() async throws {
        let haproxy = "/usr/sbin/haproxy"
        try #require(FileManager.default.isExecutableFile(atPath: haproxy), "HAProxy is missing: scripts/install-deps.sh installs it (apt-get install haproxy)")
        let lab = try await TestLab(nodes: Lab.seedNodes, cluster: "lab-3dc", postgres: true)
        defer { lab.tearDown() }
        let names = Lab.seedNodes.map(\.name)
        let primaries = await lab.answering("/primary", among: names, within: 120) { $0.count == 1 }
        try #require(primaries.count == 1, "no single primary: \(primaries)")
        let old = primaries[0]
        let streaming = await lab.answering("/replica", among: names.filter { $0 != old }, within: 60) { $0.count == 2 }
        try #require(streaming.count == 2, "replicas not streaming: \(streaming)")
        try PostgresConnection(lab.conninfo(old)).query("CREATE TABLE balanced (id bigint PRIMARY KEY, pool text)")

        // The plain port serves the checks, in every method HAProxy uses, and nothing else.
        let oldAddress = try #require(lab.state.node(old)?.address)
        #expect(plainHTTPStatus(host: oldAddress, port: NodeConfig.defaultHealthPort, "GET /primary") == 200)
        #expect(plainHTTPStatus(host: oldAddress, port: NodeConfig.defaultHealthPort, "OPTIONS /primary") == 200)
        #expect(plainHTTPStatus(host: oldAddress, port: NodeConfig.defaultHealthPort, "HEAD /replica") == 503)
        #expect(plainHTTPStatus(host: oldAddress, port: NodeConfig.defaultHealthPort, "GET /cluster") == 404)
        #expect(plainHTTPStatus(host: oldAddress, port: NodeConfig.defaultHealthPort, "POST /switchover") == 404)

        let ports = try LocalCluster.freePorts(3)
        let (plain, tls, reads) = (ports[0], ports[1], ports[2])
        let servers = { (check: String) in
            lab.state.nodes.map { "  server \($0.name) \($0.address):5432 \(check)" }.joined(separator: "\n")
        }
        let config = """
        global
          maxconn 200
        defaults
          mode tcp
          timeout connect 1s
          timeout client 30s
          timeout server 30s
          default-server inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions
        listen writes_patroni_style
          bind 127.0.0.1:\(plain)
          option httpchk OPTIONS /primary
          http-check expect status 200
        \(servers("check port \(NodeConfig.defaultHealthPort)"))
        listen writes_over_tls
          bind 127.0.0.1:\(tls)
          option httpchk GET /primary
          http-check expect status 200
        \(servers("check port \(NodeConfig.defaultAPIPort) check-ssl verify required ca-file \(lab.directory)/tls/ca.crt"))
        listen reads
          bind 127.0.0.1:\(reads)
          balance roundrobin
          option httpchk GET /replica?lag=16MB
          http-check expect status 200
        \(servers("check port \(NodeConfig.defaultHealthPort)"))

        """
        let configPath = lab.directory + "/haproxy.cfg"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let validate = Process()
        validate.executableURL = URL(fileURLWithPath: haproxy)
        validate.arguments = ["-c", "-q", "-f", configPath]
        try validate.run()
        validate.waitUntilExit()
        try #require(validate.terminationStatus == 0, "HAProxy refuses \(configPath); run haproxy -c -f on it")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: haproxy)
        process.arguments = ["-db", "-f", configPath]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }

        func through(_ port: Int) -> String {
            "host=127.0.0.1 port=\(port) user=postgres dbname=postgres connect_timeout=1 options='-c statement_timeout=1000'"
        }
        /// Which node a pool's connection lands on, and whether it is writable there.
        func land(_ port: Int) -> (node: String, writable: Bool)? {
            guard let connection = try? PostgresConnection(through(port)),
                  let row = try? connection.query("SELECT current_setting('cluster_name'), NOT pg_is_in_recovery()").first,
                  row.count == 2, let node = row[0] else { return nil }
            return (node, row[1] == "t")
        }
        var id = 0
        func write(_ port: Int, pool: String) -> String? {
            id += 1
            guard let connection = try? PostgresConnection(through(port)),
                  (try? connection.query("INSERT INTO balanced VALUES (\(id), '\(pool)')")) != nil else { return nil }
            return (try? connection.value("SELECT current_setting('cluster_name')")) ?? nil
        }

        // HAProxy starts every server up and takes the failing ones out after their first checks:
        // wait until the write pools land on the primary only and the read pool on replicas only.
        func settled() -> Bool {
            (0..<6).allSatisfy { _ in
                land(plain).map { $0.node == old && $0.writable } == true && land(tls).map { $0.node == old && $0.writable } == true
                    && land(reads).map { $0.node != old && !$0.writable } == true
            }
        }
        let ready = ContinuousClock.now + .seconds(15)
        var routed = settled()
        while !routed, ContinuousClock.now < ready {
            try await Task.sleep(for: .milliseconds(200))
            routed = settled()
        }
        #expect(routed, "within 15 s: write pools \(String(describing: land(plain))) (health_port), \(String(describing: land(tls))) (TLS); read pool \(String(describing: land(reads)))")

        // Kill the primary under load; meanwhile a thread reads through the read pool every
        // 100 ms for 8 s (blocking libpq calls stay off the test's concurrency pool).
        #expect(write(plain, pool: "before") == old)
        let readResults = Mutex<[Bool]>([])
        let readsDone = DispatchSemaphore(value: 0)
        let readConninfo = through(reads)
        Thread.detachNewThread {
            for _ in 0..<80 {
                let started = ContinuousClock.now
                let answered = (try? PostgresConnection(readConninfo).value("SELECT 1")) == "1"
                readResults.withLock { $0.append(answered) }
                let spent = ContinuousClock.now - started
                if spent < .milliseconds(100) { usleep(useconds_t((Duration.milliseconds(100) - spent) / .microseconds(1))) }
            }
            readsDone.signal()
        }
        try Lab.kill(directory: lab.directory, node: old)
        try? Lab.killPostgres(directory: lab.directory, node: old)
        let killed = ContinuousClock.now
        var resumed: [Int: (node: String, after: Duration)] = [:]
        while resumed.count < 2, ContinuousClock.now < killed + .seconds(30) {
            for port in [plain, tls] where resumed[port] == nil {
                if let node = write(port, pool: port == plain ? "plain" : "tls"), node != old { resumed[port] = (node, ContinuousClock.now - killed) }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        while readsDone.wait(timeout: .now()) == .timedOut { try await Task.sleep(for: .milliseconds(100)) }
        let polls = readResults.withLock { $0 }
        var worstReadGap = 0, run = 0
        for answered in polls {
            run = answered ? 0 : run + 1
            worstReadGap = max(worstReadGap, run)
        }
        let viaPlain = try #require(resumed[plain], "writes through OPTIONS /primary did not resume within 30 s")
        let viaTLS = try #require(resumed[tls], "writes through GET /primary over TLS did not resume within 30 s")
        #expect(viaPlain.node == viaTLS.node, "the two write pools chose different primaries")
        print("writes resumed on \(viaPlain.node) after \(viaPlain.after) (health_port) and \(viaTLS.after) (TLS); read pool: \(polls.count) polls, \(polls.filter { !$0 }.count) failed, worst run of failures \(worstReadGap)")
        // One failed poll is one check interval at most: the promoted replica leaves the pool
        // while the other stays in it.
        #expect(worstReadGap <= 1, "the read pool emptied for \(worstReadGap) polls in a row during the failover")
        #expect(await lab.status(viaPlain.node, "/primary") == 200)
    }
}

/// The status of one plain HTTP/1.0 request (no TLS), or nil when nothing answered.
private func plainHTTPStatus(host: String, port: Int, _ requestLine: String) -> Int? {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr(host)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return nil }
    let request = Array("\(requestLine) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
    guard send(descriptor, request, request.count, 0) == request.count else { return nil }
    var buffer = [UInt8](repeating: 0, count: 64)
    let count = recv(descriptor, &buffer, buffer.count, 0)
    guard count > 12 else { return nil }
    // "HTTP/1.x NNN …"
    return Int(String(decoding: buffer[9..<12], as: UTF8.self))
}
