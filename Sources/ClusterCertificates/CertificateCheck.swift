import Foundation
import X509

/// What `pgquorum certs check` reports about one node's certificate.
public struct NodeCertificateStatus: Sendable, Equatable {
    public var node: String
    public var path: String
    public var problems: [String]
    public var notValidAfter: Date?
    public var hosts: [String]
}

extension ClusterCertificates {
    /// Checks the CA and every node's certificate and key in `directory`: present, parseable,
    /// signed by the CA, naming the node, key matching certificate, and not expiring within
    /// `warnWithin`.
    public static func check(cluster: String, nodes: [String], directory: String, now: Date = Date(),
                             warnWithin: TimeInterval = 30 * 86_400) -> (ca: [String], nodes: [NodeCertificateStatus]) {
        var caProblems: [String] = []
        let ca: Certificate?
        do {
            ca = try loadCertificate(directory + "/ca.crt")
            if let ca, ca.notValidAfter < now + warnWithin {
                caProblems.append(expiry(ca.notValidAfter, now: now))
            }
        } catch {
            ca = nil
            caProblems.append("\(error)")
        }
        let statuses = nodes.map { node in
            checkPair(label: node, certificate: directory + "/\(node).crt", key: directory + "/\(node).key",
                      expected: NodeIdentity.uri(cluster: cluster, node: node), what: "node \(node) of cluster \(cluster)",
                      ca: ca, directory: directory, now: now, warnWithin: warnWithin)
        }
        return (caProblems, statuses)
    }

    /// Checks every operator certificate in `<directory>/operators` the same way (names the
    /// operator in the operators' URI form, signed by the CA, its key, expiry).
    public static func checkOperators(cluster: String, directory: String, now: Date = Date(),
                                      warnWithin: TimeInterval = 30 * 86_400) -> [NodeCertificateStatus] {
        let folder = directory + "/" + OperatorIdentity.directoryName
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasSuffix(".crt") }.map { String($0.dropLast(4)) }.sorted()
        let ca = try? loadCertificate(directory + "/ca.crt")
        return names.map { name in
            checkPair(label: "operator \(name)", certificate: folder + "/\(name).crt", key: folder + "/\(name).key",
                      expected: OperatorIdentity.uri(cluster: cluster, name: name), what: "operator \(name) of cluster \(cluster)",
                      ca: ca, directory: directory, now: now, warnWithin: warnWithin)
        }
    }

    private static func checkPair(label: String, certificate path: String, key keyPath: String, expected: String, what: String,
                                  ca: Certificate?, directory: String, now: Date, warnWithin: TimeInterval) -> NodeCertificateStatus {
        var status = NodeCertificateStatus(node: label, path: path, problems: [], notValidAfter: nil, hosts: [])
        let certificate: Certificate
        do {
            certificate = try loadCertificate(path)
        } catch {
            status.problems.append("\(error)")
            return status
        }
        status.notValidAfter = certificate.notValidAfter
        let names = (try? certificate.extensions.subjectAlternativeNames).flatMap { $0 }.map { Array($0) } ?? []
        if !names.contains(.uniformResourceIdentifier(expected)) {
            status.problems.append("does not name \(what) (expected SAN URI \(expected))")
        }
        status.hosts = names.compactMap { name in
            switch name {
            case .dnsName(let host): host
            case .ipAddress(let bytes): ipString(Array(bytes.bytes))
            default: nil
            }
        }
        if let ca, !ca.publicKey.isValidSignature(certificate.signature, for: certificate) {
            status.problems.append("is not signed by the cluster CA in \(directory)/ca.crt")
        }
        if certificate.notValidAfter < now + warnWithin { status.problems.append(expiry(certificate.notValidAfter, now: now)) }
        if certificate.notValidBefore > now { status.problems.append("is not valid before \(certificate.notValidBefore)") }
        do {
            let pem = try String(contentsOfFile: keyPath, encoding: .utf8)
            let key = try Certificate.PrivateKey(pemEncoded: pem)
            if key.publicKey != certificate.publicKey {
                status.problems.append("\(keyPath) does not belong to this certificate")
            }
            if let mode = (try? FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions]) as? Int, mode & 0o077 != 0 {
                status.problems.append("\(keyPath) is readable by others (mode \(String(mode, radix: 8))); chmod 600 it")
            }
        } catch {
            status.problems.append("\(keyPath): \(error)")
        }
        return status
    }

    static func loadCertificate(_ path: String) throws -> Certificate {
        let pem: String
        do {
            pem = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CertificateError.cannotRead(path, "missing or unreadable")
        }
        do {
            return try Certificate(pemEncoded: pem)
        } catch {
            throw CertificateError.invalid(path, "\(error)")
        }
    }

    private static func expiry(_ date: Date, now: Date) -> String {
        date < now ? "expired on \(date)" : "expires on \(date), in \(Int(date.timeIntervalSince(now) / 86_400)) days"
    }

    private static func ipString(_ bytes: [UInt8]) -> String? {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        guard bytes.count == 16 else { return nil }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}
