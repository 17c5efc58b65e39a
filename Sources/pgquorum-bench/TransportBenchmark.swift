import ArgumentParser
import ClusterCertificates
import Dispatch
import Foundation
import NIOConcurrencyHelpers
import NIOPosix
import PeerTransport
import RaftCore

/// Round trips of small Raft messages between two agents' transports over loopback mutual TLS,
/// and the cost of setting up a connection (TCP, TLS 1.3 handshake, identity check, first message).
struct TransportBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "Round trips per second and round-trip latency over loopback mutual TLS, and connection setup time."
    )

    @Option(help: "Sequential round trips (one outstanding).")
    var roundTrips = 20_000

    @Option(help: "Messages per pipelined run.")
    var pipelined = 200_000

    @Option(help: "Fresh connections for the setup measurement.")
    var connections = 50

    func run() throws {
        let dir = NSTemporaryDirectory() + "pgquorum-bench-transport-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try ClusterCertificates.create(cluster: "bench", nodes: [NodeIdentity(name: "a", hosts: ["127.0.0.1"]),
                                                                     NodeIdentity(name: "b", hosts: ["127.0.0.1"])], directory: dir)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let idA = try TransportIdentity(cluster: "bench", node: "a", directory: dir)
        let idB = try TransportIdentity(cluster: "bench", node: "b", directory: dir)
        print("pgquorum-bench transport: loopback, TLS 1.3 mutual auth, ECDSA P-256, 2 event loop threads")

        // a echoes every heartbeat as a heartbeat response; b counts responses.
        let arrived = DispatchSemaphore(value: 0)
        let echo = NIOLockedValueBox<PeerTransport?>(nil)
        let a = PeerTransport(identity: idA, localID: 1, peers: [.init(id: 2, name: "b", host: "127.0.0.1", port: 1)],
                              group: group, onMessage: { message in
                                  echo.withLockedValue { $0 }?.send(Message(from: 1, to: 2, term: message.term, kind: .heartbeatResponse(round: 0)))
                              })
        let portA = try wait { try await a.listen(host: "127.0.0.1", port: 0) }
        let b = PeerTransport(identity: idB, localID: 2, peers: [.init(id: 1, name: "a", host: "127.0.0.1", port: portA)],
                              group: group, onMessage: { _ in arrived.signal() })
        let portB = try wait { try await b.listen(host: "127.0.0.1", port: 0) }
        let aToB = PeerTransport(identity: idA, localID: 1, peers: [.init(id: 2, name: "b", host: "127.0.0.1", port: portB)],
                                 group: group, onMessage: { _ in })
        echo.withLockedValue { $0 = aToB }
        let request = Message(from: 2, to: 1, term: 1, kind: .heartbeat(commit: 0, round: 0))
        // Warm up both connections.
        for _ in 0..<100 { b.send(request); arrived.wait() }

        let clock = ContinuousClock()
        var latencies: [Double] = []
        latencies.reserveCapacity(roundTrips)
        let start = clock.now
        for _ in 0..<roundTrips {
            let sent = clock.now
            b.send(request)
            arrived.wait()
            latencies.append((clock.now - sent).seconds)
        }
        let sequential = (clock.now - start).seconds
        latencies.sort()
        print("  round trips, 1 outstanding     \(Int(Double(roundTrips) / sequential)) /s  p50 \(microseconds(latencies[latencies.count / 2])) µs  p99 \(microseconds(latencies[latencies.count * 99 / 100])) µs")

        let window = 256
        let pipelineStart = clock.now
        for index in 0..<pipelined {
            if index >= window { arrived.wait() }
            b.send(request)
        }
        for _ in 0..<min(window, pipelined) { arrived.wait() }
        let pipelinedSeconds = (clock.now - pipelineStart).seconds
        print("  round trips, \(window) outstanding   \(Int(Double(pipelined) / pipelinedSeconds)) /s")

        var setups: [Double] = []
        for _ in 0..<connections {
            let fresh = PeerTransport(identity: idB, localID: 2, peers: [.init(id: 1, name: "a", host: "127.0.0.1", port: portA)],
                                      group: group, onMessage: { _ in })
            let began = clock.now
            fresh.send(request)
            arrived.wait()
            setups.append((clock.now - began).seconds)
            wait { await fresh.shutdown() }
        }
        setups.sort()
        print("  new connection + first message p50 \(microseconds(setups[setups.count / 2])) µs  p99 \(microseconds(setups[setups.count * 99 / 100])) µs  (TCP connect, TLS 1.3 handshake, identity check, one round trip)")
        wait { await a.shutdown(); await aToB.shutdown(); await b.shutdown() }
    }

    /// Runs async work from this synchronous command and waits for it.
    private func wait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let result = NIOLockedValueBox<Result<T, Error>?>(nil)
        Task {
            let outcome: Result<T, Error>
            do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
            result.withLockedValue { $0 = outcome }
            done.signal()
        }
        done.wait()
        guard let outcome = result.withLockedValue({ $0 }) else { throw ValidationError("benchmark task ended without a result") }
        return try outcome.get()
    }

    private func wait(_ body: @escaping @Sendable () async -> Void) {
        _ = try? wait { await body(); return 0 }
    }

}
