import Foundation
import Testing
@testable import pgquorum

@Suite struct CertsCommandTests {
    @Test func nodeListParsesNamesAndHosts() throws {
        let list = try #require(NodeList(argument: "primary=10.0.1.100,secondary1=db2+10.0.2.100,witness"))
        #expect(list.nodes.map(\.name) == ["primary", "secondary1", "witness"])
        #expect(list.nodes.map(\.hosts) == [["10.0.1.100"], ["db2", "10.0.2.100"], []])
        #expect(NodeList(argument: "") == nil)
        #expect(NodeList(argument: "=10.0.0.1") == nil)
    }

    @Test func initThenCheckSucceedsAndSecondInitIsRefused() throws {
        let dir = NSTemporaryDirectory() + "pgquorum-certs-cli-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try InitCerts.parse(["--dir", dir, "--cluster", "lab", "--nodes", "a=127.0.0.1,b=127.0.0.2"]).run()
        #expect(throws: Never.self) { try CheckCerts.parse(["--dir", dir, "--cluster", "lab", "--nodes", "a,b"]).run() }
        #expect(throws: CommandFailure.self) {
            try InitCerts.parse(["--dir", dir, "--cluster", "lab", "--nodes", "a=127.0.0.1"]).run()
        }
        #expect(throws: (any Error).self) { try CheckCerts.parse(["--dir", dir, "--cluster", "other", "--nodes", "a"]).run() }
        try IssueCerts.parse(["--dir", dir, "--cluster", "lab", "--nodes", "c=127.0.0.3"]).run()
        #expect(throws: Never.self) { try CheckCerts.parse(["--dir", dir, "--cluster", "lab", "--nodes", "a,b,c"]).run() }
    }
}
