import Foundation
import Testing
import X509
@testable import ClusterCertificates

@Suite struct ClusterCertificatesTests {
    private let nodes = [
        NodeIdentity(name: "primary", hosts: ["10.0.1.100", "db1.example.internal"]),
        NodeIdentity(name: "secondary1", hosts: ["10.0.2.100"]),
        NodeIdentity(name: "secondary2", hosts: ["fd00::1:100"]),
    ]

    private func temporary() -> String {
        NSTemporaryDirectory() + "pgquorum-certs-" + UUID().uuidString
    }

    @Test func createsACAAndOneKeyAndCertificatePerNode() throws {
        let dir = temporary()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = try ClusterCertificates.create(cluster: "three-dc", nodes: nodes, directory: dir)
        #expect(files.count == 10)
        #expect(files.suffix(2) == [dir + "/operators/admin.crt", dir + "/operators/admin.key"])
        for file in files where file.hasSuffix(".key") {
            let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file)")
        }
        let certificate = try ClusterCertificates.loadCertificate(dir + "/primary.crt")
        let names = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(names.contains(.uniformResourceIdentifier("pgquorum://three-dc/primary")))
        #expect(names.contains(.dnsName("db1.example.internal")))
        #expect(names.contains(ClusterCertificates.generalName(forHost: "10.0.1.100")))
        let check = ClusterCertificates.check(cluster: "three-dc", nodes: nodes.map(\.name), directory: dir)
        #expect(check.ca.isEmpty)
        #expect(check.nodes.allSatisfy { $0.problems.isEmpty })
        #expect(check.nodes.first { $0.node == "secondary2" }?.hosts == ["fd00:0:0:0:0:0:1:100"])
    }

    /// The node certificates are valid under RFC 5280 path validation against the CA, for both
    /// server and client authentication (mutual TLS).
    @Test func nodeCertificatesValidateAgainstTheCA() async throws {
        let dir = temporary()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try ClusterCertificates.create(cluster: "c", nodes: nodes, directory: dir)
        let ca = try ClusterCertificates.loadCertificate(dir + "/ca.crt")
        let leaf = try ClusterCertificates.loadCertificate(dir + "/secondary1.crt")
        var verifier = Verifier(rootCertificates: CertificateStore([ca])) { RFC5280Policy() }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
        guard case .validCertificate = result else {
            Issue.record("not valid: \(result)")
            return
        }
        let usage = try #require(try leaf.extensions.extendedKeyUsage)
        #expect(usage.contains(.serverAuth) && usage.contains(.clientAuth))
    }

    @Test func refusesToOverwrite() throws {
        let dir = temporary()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try ClusterCertificates.create(cluster: "c", nodes: nodes, directory: dir)
        #expect(throws: CertificateError.fileExists(dir + "/ca.crt")) {
            try ClusterCertificates.create(cluster: "c", nodes: nodes, directory: dir)
        }
    }

    @Test func rejectsBadAndDuplicateNames() {
        #expect(throws: CertificateError.invalidNodeName("a/b")) {
            try ClusterCertificates.create(cluster: "c", nodes: [NodeIdentity(name: "a/b", hosts: [])], directory: temporary())
        }
        #expect(throws: CertificateError.duplicateNode("a")) {
            try ClusterCertificates.create(cluster: "c", nodes: [NodeIdentity(name: "a", hosts: []), NodeIdentity(name: "a", hosts: [])],
                                           directory: temporary())
        }
    }

    @Test func checkFindsForeignExpiredMisnamedAndExposedCertificates() throws {
        let dir = temporary(), other = temporary()
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: other)
        }
        _ = try ClusterCertificates.create(cluster: "c", nodes: nodes, directory: dir)
        _ = try ClusterCertificates.create(cluster: "c", nodes: nodes, directory: other,
                                           validity: 10 * 86_400, now: Date().addingTimeInterval(-30 * 86_400))
        let fm = FileManager.default
        // primary: a certificate and key from another CA (and long expired).
        for ext in ["crt", "key"] {
            try fm.removeItem(atPath: dir + "/primary.\(ext)")
            try fm.copyItem(atPath: other + "/primary.\(ext)", toPath: dir + "/primary.\(ext)")
        }
        // secondary1: secondary2's certificate under secondary1's name.
        try fm.removeItem(atPath: dir + "/secondary1.crt")
        try fm.copyItem(atPath: dir + "/secondary2.crt", toPath: dir + "/secondary1.crt")
        // secondary2: a key anyone can read.
        try fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir + "/secondary2.key")

        let statuses = ClusterCertificates.check(cluster: "c", nodes: nodes.map(\.name) + ["witness"], directory: dir).nodes
        func problems(_ node: String) -> String { statuses.first { $0.node == node }?.problems.joined(separator: "; ") ?? "" }
        #expect(problems("primary").contains("not signed by the cluster CA"))
        #expect(problems("primary").contains("expired on"))
        #expect(problems("secondary1").contains("does not name node secondary1"))
        #expect(problems("secondary1").contains("does not belong to this certificate"))
        #expect(problems("secondary2").contains("readable by others"))
        #expect(problems("witness").contains("missing or unreadable"))
    }
}

@Suite struct IssueTests {
    @Test func issuesNewNodesFromTheExistingCA() throws {
        let dir = NSTemporaryDirectory() + "pgquorum-issue-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try ClusterCertificates.create(cluster: "c", nodes: [NodeIdentity(name: "a", hosts: [])], directory: dir)
        let files = try ClusterCertificates.issue(cluster: "c", nodes: [NodeIdentity(name: "d", hosts: ["10.9.9.9"])], directory: dir)
        #expect(files == [dir + "/d.crt", dir + "/d.key"])
        let check = ClusterCertificates.check(cluster: "c", nodes: ["a", "d"], directory: dir)
        #expect(check.nodes.allSatisfy { $0.problems.isEmpty })
        #expect(throws: CertificateError.fileExists(dir + "/d.crt")) {
            try ClusterCertificates.issue(cluster: "c", nodes: [NodeIdentity(name: "d", hosts: [])], directory: dir)
        }
    }

    @Test func refusesACAKeyThatIsNotTheCAs() throws {
        let dir = NSTemporaryDirectory() + "pgquorum-issue-" + UUID().uuidString
        let other = NSTemporaryDirectory() + "pgquorum-issue-" + UUID().uuidString
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: other)
        }
        _ = try ClusterCertificates.create(cluster: "c", nodes: [], directory: dir)
        _ = try ClusterCertificates.create(cluster: "c", nodes: [], directory: other)
        try FileManager.default.removeItem(atPath: dir + "/ca.key")
        try FileManager.default.copyItem(atPath: other + "/ca.key", toPath: dir + "/ca.key")
        #expect(throws: CertificateError.invalid(dir + "/ca.key", "does not belong to \(dir)/ca.crt")) {
            try ClusterCertificates.issue(cluster: "c", nodes: [NodeIdentity(name: "x", hosts: [])], directory: dir)
        }
    }
}

@Suite struct OperatorCertificateTests {
    /// An operator's certificate names the operator in a scheme of its own and serves TLS client
    /// authentication only: it can pass neither for a node on the peer port nor as a server.
    @Test func anOperatorCertificateIsAClientOfItsOwnKind() async throws {
        let dir = NSTemporaryDirectory() + "pgquorum-operator-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try ClusterCertificates.create(cluster: "c", nodes: [NodeIdentity(name: "a", hosts: [])], operators: [], directory: dir)
        let files = try ClusterCertificates.issueOperators(cluster: "c", names: ["alice"], directory: dir)
        #expect(files == [dir + "/operators/alice.crt", dir + "/operators/alice.key"])
        let mode = try FileManager.default.attributesOfItem(atPath: dir + "/operators")[.posixPermissions] as? Int
        #expect(mode == 0o700)
        let leaf = try ClusterCertificates.loadCertificate(dir + "/operators/alice.crt")
        let names = try #require(try leaf.extensions.subjectAlternativeNames)
        #expect(Array(names) == [.uniformResourceIdentifier("pgquorum-operator://c/alice")])
        let usage = try #require(try leaf.extensions.extendedKeyUsage)
        #expect(usage.contains(.clientAuth) && !usage.contains(.serverAuth))
        let ca = try ClusterCertificates.loadCertificate(dir + "/ca.crt")
        var verifier = Verifier(rootCertificates: CertificateStore([ca])) { RFC5280Policy() }
        guard case .validCertificate = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) else {
            Issue.record("the operator certificate does not validate against the CA")
            return
        }
        #expect(ClusterCertificates.checkOperators(cluster: "c", directory: dir).map { "\($0.node): \($0.problems)" } == ["operator alice: []"])
        // Checked against another cluster's name it names nobody there.
        #expect(ClusterCertificates.checkOperators(cluster: "other", directory: dir).first?.problems.first?.contains("does not name operator alice") == true)
        #expect(throws: CertificateError.fileExists(dir + "/operators/alice.crt")) {
            try ClusterCertificates.issueOperators(cluster: "c", names: ["alice"], directory: dir)
        }
        #expect(throws: CertificateError.invalidNodeName("../x")) {
            try ClusterCertificates.issueOperators(cluster: "c", names: ["../x"], directory: dir)
        }
    }
}
