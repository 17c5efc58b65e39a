import Foundation
import LocalCluster

/// What the benchmarks that run a LocalCluster with PostgreSQL share.
extension LocalCluster {
    /// The primary and the two streaming replicas, once one node answers `/primary` and two
    /// answer `/replica` (polled for up to `seconds`); nil when that does not happen.
    func settled(within seconds: Int) async throws -> (primary: String, replicas: [String])? {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            var primaries: [String] = [], replicas: [String] = []
            for name in names {
                if await status(of: name, path: "/primary") == 200 { primaries.append(name) }
                if await status(of: name, path: "/replica") == 200 { replicas.append(name) }
            }
            if primaries.count == 1, replicas.count == 2 { return (primaries[0], replicas) }
            try await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }

    /// A libpq multi-host conninfo of every node's PostgreSQL that finds the primary, the way
    /// an application does without a proxy.
    var writerConninfo: String {
        let ports = names.map { "\(postgresPorts[$0] ?? 0)" }.joined(separator: ",")
        return "host=\(Array(repeating: "127.0.0.1", count: names.count).joined(separator: ",")) port=\(ports) "
            + "user=postgres dbname=postgres connect_timeout=1 target_session_attrs=read-write tcp_user_timeout=2000 options='-c statement_timeout=2000'"
    }
}
