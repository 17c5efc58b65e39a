import Crypto
import Foundation
import SwiftASN1
import X509

/// A node as certificates see it: its cluster name, and the hosts (DNS names or IP addresses)
/// its peers use to reach it.
public struct NodeIdentity: Sendable, Equatable {
    public var name: String
    public var hosts: [String]

    public init(name: String, hosts: [String]) {
        self.name = name
        self.hosts = hosts
    }

    /// The URI every node certificate carries as a subject alternative name. The transport
    /// accepts a peer only if this names the node it expects on that connection.
    public static func uri(cluster: String, node: String) -> String { "pgquorum://\(cluster)/\(node)" }
}

/// An operator as certificates see it: a person or a script that changes the cluster
/// (switchover, failover, quorum recovery) through the API. Its certificate is for TLS client
/// authentication only, and its URI has a scheme of its own, so that no operator certificate can
/// pass for a node on the peer port and no node key can act as an operator on the API.
public enum OperatorIdentity {
    public static func uri(cluster: String, name: String) -> String { "pgquorum-operator://\(cluster)/\(name)" }
    /// Operators' files live apart from the nodes': `<tls.dir>/operators/<name>.crt` and `.key`.
    public static let directoryName = "operators"
}

public enum CertificateError: Error, Equatable, CustomStringConvertible {
    case invalidNodeName(String)
    case duplicateNode(String)
    case fileExists(String)
    case cannotWrite(String, String)
    case cannotRead(String, String)
    case invalid(String, String)

    public var description: String {
        switch self {
        case .invalidNodeName(let name):
            "invalid name \"\(name)\": use letters, digits, '-' and '_' only"
        case .duplicateNode(let name): "\"\(name)\" is listed twice"
        case .fileExists(let path):
            "\(path) already exists: refusing to overwrite certificates or keys (remove it first, or use another --dir)"
        case .cannotWrite(let path, let why): "cannot write \(path): \(why)"
        case .cannotRead(let path, let why): "cannot read \(path): \(why)"
        case .invalid(let path, let why): "\(path) is not a usable certificate or key: \(why)"
        }
    }
}

/// Creates and inspects the cluster CA and the node certificates, in pure Swift
/// (swift-certificates and swift-crypto), as PEM files: `ca.crt`, `ca.key` and, per node,
/// `<node>.crt` and `<node>.key`. Private keys are written with mode 0600.
public enum ClusterCertificates {
    /// Writes a new CA, one key + certificate per node and one per operator (`operators`, in
    /// `operators/`) into `directory`. Refuses to overwrite anything that exists.
    public static func create(cluster: String, nodes: [NodeIdentity], operators: [String] = ["admin"], directory: String,
                              validity: TimeInterval = 825 * 86_400, now: Date = Date()) throws -> [String] {
        var seen: Set<String> = []
        for node in nodes {
            guard isValidName(node.name) else { throw CertificateError.invalidNodeName(node.name) }
            guard seen.insert(node.name).inserted else { throw CertificateError.duplicateNode(node.name) }
        }
        guard isValidName(cluster) else { throw CertificateError.invalidNodeName(cluster) }
        for name in operators where !isValidName(name) { throw CertificateError.invalidNodeName(name) }
        let files = ["ca.crt", "ca.key"] + nodes.flatMap { ["\($0.name).crt", "\($0.name).key"] } + operatorFiles(operators)
        try refuseExisting(files, in: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])

        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("pgquorum")
            CommonName("pgquorum CA for cluster \(cluster)")
        }
        let caCertificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(caKey.publicKey),
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(validity + 86_400),
            issuer: caName,
            subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(caKey)
        )
        try write(caCertificate.serializeAsPEM().pemString, to: directory + "/ca.crt", mode: 0o644)
        try write(caKey.pemRepresentation, to: directory + "/ca.key", mode: 0o600)

        for node in nodes {
            try issueNode(node, cluster: cluster, caName: caName, caKey: caKey, directory: directory,
                          validity: validity, now: now)
        }
        for name in operators {
            try issueOperator(name, cluster: cluster, caName: caName, caKey: caKey, directory: directory, validity: validity, now: now)
        }
        return files.map { directory + "/" + $0 }
    }

    /// Issues certificates for more nodes from the CA already in `directory` (a new member, or a
    /// node whose certificate expires). Refuses to overwrite a node's existing files.
    public static func issue(cluster: String, nodes: [NodeIdentity], directory: String,
                             validity: TimeInterval = 825 * 86_400, now: Date = Date()) throws -> [String] {
        guard isValidName(cluster) else { throw CertificateError.invalidNodeName(cluster) }
        for node in nodes where !isValidName(node.name) { throw CertificateError.invalidNodeName(node.name) }
        let (caCertificate, caKey) = try loadAuthority(directory)
        let files = nodes.flatMap { ["\($0.name).crt", "\($0.name).key"] }
        try refuseExisting(files, in: directory)
        for node in nodes {
            try issueNode(node, cluster: cluster, caName: caCertificate.subject, caKey: caKey, directory: directory,
                          validity: validity, now: now)
        }
        return files.map { directory + "/" + $0 }
    }

    /// Issues operator certificates from the CA already in `directory`, into `operators/`.
    /// Refuses to overwrite an operator's existing files.
    public static func issueOperators(cluster: String, names: [String], directory: String,
                                      validity: TimeInterval = 825 * 86_400, now: Date = Date()) throws -> [String] {
        guard isValidName(cluster) else { throw CertificateError.invalidNodeName(cluster) }
        for name in names where !isValidName(name) { throw CertificateError.invalidNodeName(name) }
        var seen: Set<String> = []
        for name in names where !seen.insert(name).inserted { throw CertificateError.duplicateNode(name) }
        let (caCertificate, caKey) = try loadAuthority(directory)
        let files = operatorFiles(names)
        try refuseExisting(files, in: directory)
        for name in names {
            try issueOperator(name, cluster: cluster, caName: caCertificate.subject, caKey: caKey, directory: directory,
                              validity: validity, now: now)
        }
        return files.map { directory + "/" + $0 }
    }

    /// The cluster the CA in `directory` was made for (its common name says so), or nil.
    public static func clusterOfAuthority(in directory: String) -> String? {
        guard let ca = try? loadCertificate(directory + "/ca.crt") else { return nil }
        let prefix = "pgquorum CA for cluster "
        for name in ca.subject {
            for attribute in name where attribute.type == .RDNAttributeType.commonName {
                guard let text = String(attribute.value), text.hasPrefix(prefix) else { continue }
                return String(text.dropFirst(prefix.count))
            }
        }
        return nil
    }

    /// Certificates and keys are never overwritten: the first that exists stops everything.
    private static func refuseExisting(_ files: [String], in directory: String) throws {
        for file in files where FileManager.default.fileExists(atPath: directory + "/" + file) {
            throw CertificateError.fileExists(directory + "/" + file)
        }
    }

    static func operatorFiles(_ names: [String]) -> [String] {
        names.flatMap { ["\(OperatorIdentity.directoryName)/\($0).crt", "\(OperatorIdentity.directoryName)/\($0).key"] }
    }

    /// The CA certificate and its key from `directory`, checked to belong together.
    private static func loadAuthority(_ directory: String) throws -> (Certificate, P256.Signing.PrivateKey) {
        let caCertificate = try loadCertificate(directory + "/ca.crt")
        let caKey: P256.Signing.PrivateKey
        do {
            caKey = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: directory + "/ca.key", encoding: .utf8))
        } catch {
            throw CertificateError.invalid(directory + "/ca.key", "not a P-256 private key in PEM (\(error))")
        }
        guard Certificate.PublicKey(caKey.publicKey) == caCertificate.publicKey else {
            throw CertificateError.invalid(directory + "/ca.key", "does not belong to \(directory)/ca.crt")
        }
        return (caCertificate, caKey)
    }

    private static func issueOperator(_ name: String, cluster: String, caName: DistinguishedName,
                                      caKey: P256.Signing.PrivateKey, directory: String, validity: TimeInterval, now: Date) throws {
        let folder = directory + "/" + OperatorIdentity.directoryName
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CertificateError.cannotWrite(folder, "\(error)")
        }
        // A client only: an operator's key cannot serve as a node's server certificate.
        try issueLeaf(commonName: name, unit: "operators of \(cluster)", usages: [.clientAuth],
                      names: [.uniformResourceIdentifier(OperatorIdentity.uri(cluster: cluster, name: name))],
                      caName: caName, caKey: caKey, validity: validity, now: now, path: folder + "/" + name)
    }

    private static func issueNode(_ node: NodeIdentity, cluster: String, caName: DistinguishedName,
                                  caKey: P256.Signing.PrivateKey, directory: String, validity: TimeInterval, now: Date) throws {
        let names: [GeneralName] = [.uniformResourceIdentifier(NodeIdentity.uri(cluster: cluster, node: node.name))]
            + node.hosts.map(generalName(forHost:))
        try issueLeaf(commonName: node.name, unit: cluster, usages: [.serverAuth, .clientAuth], names: names,
                      caName: caName, caKey: caKey, validity: validity, now: now, path: directory + "/" + node.name)
    }

    /// A new key and a certificate for it signed by the CA: `<path>.crt` and `<path>.key`.
    private static func issueLeaf(commonName: String, unit: String, usages: [ExtendedKeyUsage.Usage], names: [GeneralName],
                                  caName: DistinguishedName, caKey: P256.Signing.PrivateKey, validity: TimeInterval, now: Date,
                                  path: String) throws {
        let key = P256.Signing.PrivateKey()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(validity),
            issuer: caName,
            subject: try DistinguishedName {
                OrganizationName("pgquorum")
                OrganizationalUnitName(unit)
                CommonName(commonName)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage(usages)
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: .init(caKey)
        )
        try write(certificate.serializeAsPEM().pemString, to: path + ".crt", mode: 0o644)
        try write(key.pemRepresentation, to: path + ".key", mode: 0o600)
    }

    /// An IP address becomes an IP SAN, anything else a DNS SAN.
    static func generalName(forHost host: String) -> GeneralName {
        if let bytes = ipv4Bytes(host) ?? ipv6Bytes(host) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))) }
        return .dnsName(host)
    }

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
    }

    private static func ipv4Bytes(_ host: String) -> [UInt8]? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }

    private static func ipv6Bytes(_ host: String) -> [UInt8]? {
        guard host.contains(":") else { return nil }
        var address = in6_addr()
        guard inet_pton(AF_INET6, host, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    /// Creates the file with its final mode from the start (never readable by others, not even
    /// for a moment) and refuses to replace an existing one.
    private static func write(_ text: String, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            if errno == EEXIST { throw CertificateError.fileExists(path) }
            throw CertificateError.cannotWrite(path, String(cString: strerror(errno)))
        }
        defer { close(fd) }
        guard fchmod(fd, mode) == 0 else { throw CertificateError.cannotWrite(path, String(cString: strerror(errno))) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            throw CertificateError.cannotWrite(path, String(cString: strerror(errno)))
        }
    }
}
