import ClusterConfig
import Logging
import Synchronization
import Testing
@testable import Agent

@Suite struct PeerSourcesTests {
    @Test func allowedSourcesFollowTheTag() {
        var node = NodeConfig(name: "b", host: "10.0.0.2", dataDirectory: "/x")
        #expect(PeerSources.allowed(for: node) == ["10.0.0.2"])
        node.peerAddressCheck = .off
        #expect(PeerSources.allowed(for: node) == nil)
        node.peerAddressCheck = .addresses(["192.0.2.7", "2001:0db8:0000::0001"])
        #expect(PeerSources.allowed(for: node) == ["192.0.2.7", "2001:db8::1"], "IPv6 in the form NIO prints")
        node = NodeConfig(name: "c", host: "localhost", dataDirectory: "/x")
        #expect(PeerSources.needsResolving(node))
        #expect(PeerSources.allowed(for: node)?.contains("127.0.0.1") == true)
        node = NodeConfig(name: "d", host: "no-such-host.invalid", dataDirectory: "/x")
        #expect(PeerSources.allowed(for: node) == [], "a name that does not resolve allows nobody")
    }

    /// Anyone who reaches the peer port can cause refusals: ten lines a minute at most, then
    /// one line with the count of those not logged.
    @Test func refusalsAreLoggedTenAMinute() {
        let lines = Lines()
        let logger = Logger(label: "test") { _ in Capture(lines: lines) }
        let log = RefusalLog(logger: logger)
        for index in 0..<25 { log.refused("attempt \(index)") }
        #expect(lines.all.count == 10)
        #expect(lines.all.allSatisfy { $0 == "peer connection refused" })
    }

    final class Lines: Sendable {
        private let storage = Mutex<[String]>([])
        func append(_ line: String) { storage.withLock { $0.append(line) } }
        var all: [String] { storage.withLock { $0 } }
    }

    struct Capture: LogHandler {
        let lines: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.MetadataValue? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            lines.append("\(message)")
        }
    }
}
