import ArgumentParser
import Foundation
import Testing
@testable import pgquorum

@Suite struct ConfigCommandTests {
    @Test func certsFromTheConfigThenValidateWithFiles() throws {
        let dir = NSTemporaryDirectory() + "pgquorum-config-cli-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let config = dir + "/local-3.yaml"
        try FileManager.default.copyItem(atPath: repository.appendingPathComponent("cluster-configs/local-3.yaml").path, toPath: config)

        // Before the certificates exist, full validation fails; without file checks it passes.
        #expect(throws: ExitCode.failure) { try ValidateConfig.parse([config]).run() }
        #expect(throws: Never.self) { try ValidateConfig.parse([config, "--skip-tls-files"]).run() }
        try InitCerts.parse(["--config", config]).run()
        for file in ["ca.crt", "node1.crt", "node1.key", "node3.key"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/tls/" + file), "\(file) missing")
        }
        #expect(throws: Never.self) { try ValidateConfig.parse([config]).run() }
        #expect(throws: Never.self) { try CheckCerts.parse(["--config", config]).run() }
        // Certificates name the config's cluster: checking against another cluster name fails.
        #expect(throws: (any Error).self) { try CheckCerts.parse(["--config", config, "--cluster", "other"]).run() }
    }

    @Test func certsNeedAConfigOrDirAndNodes() {
        #expect(throws: (any Error).self) { try InitCerts.parse(["--dir", "/tmp/x"]) }
        #expect(throws: (any Error).self) { try InitCerts.parse([]) }
    }
}
