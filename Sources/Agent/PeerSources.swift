import ClusterConfig
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a peer may connect from (`tags.peer_address_check`): its host's addresses by default.
enum PeerSources {
    /// The allowed source addresses, or nil for any (the check is off). A host name that does
    /// not resolve gives an empty set: refused from everywhere until it resolves (`needsResolving`).
    static func allowed(for node: NodeConfig) -> Set<String>? {
        switch node.peerAddressCheck {
        case .off: return nil
        case .addresses(let list): return Set(list.map(canonical))
        case .configuredHost: return NodeConfig.isIPAddress(node.host) ? [canonical(node.host)] : resolve(node.host)
        }
    }

    /// A node whose allowed sources come from DNS, and so may change.
    static func needsResolving(_ node: NodeConfig) -> Bool {
        node.peerAddressCheck == .configuredHost && !NodeConfig.isIPAddress(node.host)
    }

    /// The form NIO prints a remote address in (IPv6 compressed, as inet_ntop writes it).
    static func canonical(_ address: String) -> String {
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return address }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count)) != nil else { return address }
        return String(cString: buffer)
    }

    static func resolve(_ host: String) -> Set<String> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0 else { return [] }
        defer { freeaddrinfo(list) }
        var addresses: Set<String> = []
        var entry = list
        while let info = entry?.pointee {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(info.ai_addr, info.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                addresses.insert(String(cString: buffer))
            }
            entry = info.ai_next
        }
        return addresses
    }
}

/// `peer connection refused` (or another `subject`) warnings, at most ten a minute: anyone who
/// reaches the port can cause them, and they must not flood the log. The count of the ones left
/// out follows.
final class RefusalLog: Sendable {
    private let logger: Logger
    private let subject: String
    private let window = Mutex<(start: ContinuousClock.Instant, logged: Int, skipped: Int)>((.now, 0, 0))
    static let perMinute = 10

    init(logger: Logger, subject: String = "peer connection") {
        self.logger = logger
        self.subject = subject
    }

    func refused(_ reason: String) {
        let now = ContinuousClock.now
        let (log, skippedBefore) = window.withLock { state -> (Bool, Int) in
            var skipped = 0
            if now - state.start > .seconds(60) {
                skipped = state.skipped
                state = (now, 0, 0)
            }
            guard state.logged < Self.perMinute else {
                state.skipped += 1
                return (false, skipped)
            }
            state.logged += 1
            return (true, skipped)
        }
        if skippedBefore > 0 {
            logger.warning("more \(subject)s were refused than logged (ten a minute at most)", metadata: ["not_logged": "\(skippedBefore)"])
        }
        if log { logger.warning("\(subject) refused", metadata: ["reason": "\(reason)"]) }
    }
}
