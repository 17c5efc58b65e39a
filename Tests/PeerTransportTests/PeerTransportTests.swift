import ClusterCertificates
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RaftCodec
import RaftCore
import Testing
@testable import PeerTransport

/// Real TLS over loopback, certificates from `ClusterCertificates`.
@Suite(.serialized) struct PeerTransportTests {
    final class Inbox: Sendable {
        let messages = NIOLockedValueBox<[Message]>([])
        let events = NIOLockedValueBox<[String]>([])
        let reports = NIOLockedValueBox<[(NodeID, [UInt8])]>([])
        let notices = NIOLockedValueBox<[(NodeID, [UInt8])]>([])
        func waitForMessages(_ count: Int, seconds: Double = 5) async -> [Message] {
            await waitFor(seconds: seconds) { self.messages.withLockedValue { $0.count >= count } }
            return messages.withLockedValue { $0 }
        }
        func waitForEvent(containing text: String, seconds: Double = 5) async -> Bool {
            await waitFor(seconds: seconds) { self.events.withLockedValue { $0.contains { $0.contains(text) } } }
            return events.withLockedValue { $0.contains { $0.contains(text) } }
        }
    }

    static func waitFor(seconds: Double, _ condition: @Sendable () -> Bool) async {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !condition(), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
    }

    struct Fixture {
        let dir: String
        let group: MultiThreadedEventLoopGroup
        init() throws {
            dir = NSTemporaryDirectory() + "pgquorum-transport-" + UUID().uuidString
            _ = try ClusterCertificates.create(cluster: "lab", nodes: ["a", "b", "c"].map { NodeIdentity(name: $0, hosts: ["127.0.0.1"]) },
                                               directory: dir)
            group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        }
        func remove() {
            try? group.syncShutdownGracefully()
            try? FileManager.default.removeItem(atPath: dir)
        }
        func transport(_ name: String, id: NodeID, peers: [PeerTransport.Peer], inbox: Inbox,
                       options: PeerTransport.Options = .init(), certificateOf: String? = nil, cluster: String = "lab",
                       group: MultiThreadedEventLoopGroup? = nil,
                       answer: @escaping @Sendable ([UInt8]) -> [UInt8]? = { _ in nil }) throws -> PeerTransport {
            let identity = try TransportIdentity(cluster: cluster, node: certificateOf ?? name, directory: dir)
            return PeerTransport(identity: identity, localID: id, peers: peers, group: group ?? self.group, options: options,
                                 onMessage: { message in inbox.messages.withLockedValue { $0.append(message) } },
                                 onReport: { from, payload in inbox.reports.withLockedValue { $0.append((from, payload)) } },
                                 onNotice: { from, payload in
                                     inbox.notices.withLockedValue { $0.append((from, payload)) }
                                     return answer(payload)
                                 },
                                 onEvent: { event in inbox.events.withLockedValue { $0.append("\(event)") } })
        }
    }

    /// The whole membership (a, b, c), with the ports known so far.
    static func members(a: Int = 1, b: Int = 1, c: Int = 1, except: NodeID) -> [PeerTransport.Peer] {
        [PeerTransport.Peer(id: 1, name: "a", host: "127.0.0.1", port: a),
         PeerTransport.Peer(id: 2, name: "b", host: "127.0.0.1", port: b),
         PeerTransport.Peer(id: 3, name: "c", host: "127.0.0.1", port: c)].filter { $0.id != except }
    }

    @Test func membersExchangeMessagesBothWays() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let inboxA = Inbox(), inboxB = Inbox()
        let a = try fixture.transport("a", id: 1, peers: Self.members(except: 1), inbox: inboxA)
        let portA = try await a.listen(host: "127.0.0.1", port: 0)
        let b = try fixture.transport("b", id: 2, peers: Self.members(a: portA, except: 2), inbox: inboxB)
        let portB = try await b.listen(host: "127.0.0.1", port: 0)
        let a2 = try fixture.transport("a", id: 1, peers: Self.members(b: portB, except: 1), inbox: inboxA)
        let heartbeat = Message(from: 2, to: 1, term: 3, kind: .heartbeat(commit: 9, round: 4))
        b.send(heartbeat)
        #expect(await inboxA.waitForMessages(1) == [heartbeat])
        let response = Message(from: 1, to: 2, term: 3, kind: .heartbeatResponse(round: 4))
        a2.send(response)
        #expect(await inboxB.waitForMessages(1) == [response])
        b.ping(1)
        await PeerTransportTests.waitFor(seconds: 5) { b.roundTripTime(of: 1) != nil }
        #expect(b.roundTripTime(of: 1) != nil)
        await a.shutdown(); await a2.shutdown(); await b.shutdown()
    }

    /// Both ends of a peer link retransmit after 20 ms, not TCP's 200 ms minimum, where the
    /// kernel has TCP_RTO_MIN_US (Linux 6.15): a frame lost in a blip arrives soon after the
    /// link is back. An older kernel refuses the option and the link works as before.
    @Test func peerLinksRetransmitSoonAfterABlip() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let inboxA = Inbox(), inboxB = Inbox()
        let a = try fixture.transport("a", id: 1, peers: Self.members(except: 1), inbox: inboxA)
        let portA = try await a.listen(host: "127.0.0.1", port: 0)
        let b = try fixture.transport("b", id: 2, peers: Self.members(a: portA, except: 2), inbox: inboxB)
        _ = try await b.listen(host: "127.0.0.1", port: 0)
        let heartbeat = Message(from: 2, to: 1, term: 3, kind: .heartbeat(commit: 9, round: 4))
        b.send(heartbeat)
        #expect(await inboxA.waitForMessages(1) == [heartbeat])
        // `ss` prints each end's current retransmission timeout ("rto:20.3"): the dialled end
        // has local port portA, the dialling end remote port portA.
        let output = try Self.run("/usr/bin/ss", ["-Htin", "( sport = :\(portA) or dport = :\(portA) )"])
        let timeouts = output.split(separator: " ").compactMap { field -> Double? in
            field.hasPrefix("rto:") ? Double(field.dropFirst(4)) : nil
        }
        #expect(timeouts.count == 2, "ss: \(output)")
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(probe) }
        var value = CInt(PeerTransport.minimumRetransmissionMicroseconds)
        let supported = setsockopt(probe, CInt(IPPROTO_TCP), 45, &value, socklen_t(MemoryLayout<CInt>.size)) == 0
        for timeout in timeouts {
            if supported { #expect(timeout < 100, "ss: \(output)") } else { #expect(timeout >= 200, "ss: \(output)") }
        }
        await a.shutdown(); await b.shutdown()
    }

    static func run(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// A peer that stops reading (its event loop blocked, like a stalled process) does not make
    /// the sender buffer without bound: past the connection's high-water mark messages are
    /// dropped, as on a lossy link, and the ones sent after it reads again arrive.
    @Test func aPeerThatStopsReadingMakesTheSenderDropNotBuffer() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let groupB = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let inboxA = Inbox(), inboxB = Inbox()
        let b = try fixture.transport("b", id: 2, peers: Self.members(except: 2), inbox: inboxB, group: groupB)
        let portB = try await b.listen(host: "127.0.0.1", port: 0)
        let a = try fixture.transport("a", id: 1, peers: Self.members(b: portB, except: 1), inbox: inboxA)
        let first = Message(from: 1, to: 2, term: 1, kind: .heartbeat(commit: 0, round: 1))
        a.send(first)
        #expect(await inboxB.waitForMessages(1) == [first])
        // b stops reading for two seconds; a sends 64 MiB meanwhile, far beyond what the
        // kernel's socket buffers hold.
        let blocked = groupB.next().submit { usleep(2_000_000) }
        let entry = Entry(term: 1, index: 1, payload: .application([UInt8](repeating: 7, count: 64 * 1_024)))
        for round in UInt64(2)...1_025 {
            a.send(Message(from: 1, to: 2, term: 1, kind: .append(prevIndex: 0, prevTerm: 0, entries: [entry], commit: 0, round: round)))
            if round % 64 == 0 { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(a.droppedMessages(to: 2) > 0, "every message was buffered for a peer that did not read")
        try await blocked.get()
        let last = Message(from: 1, to: 2, term: 1, kind: .heartbeat(commit: 0, round: 9_999))
        await PeerTransportTests.waitFor(seconds: 10) {
            a.send(last)
            return inboxB.messages.withLockedValue { $0.contains(last) }
        }
        #expect(inboxB.messages.withLockedValue { $0.contains(last) }, "nothing arrived once the peer read again")
        await a.shutdown(); await b.shutdown()
        try await groupB.shutdownGracefully()
    }

    /// Reports go only to a peer that has shown it speaks wire version 2; then they arrive whole.
    @Test func reportsWaitUntilThePeerShowsItsVersion() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let inboxA = Inbox(), inboxB = Inbox()
        let b = try fixture.transport("b", id: 2, peers: Self.members(except: 2), inbox: inboxB)
        let portB = try await b.listen(host: "127.0.0.1", port: 0)
        let a = try fixture.transport("a", id: 1, peers: Self.members(b: portB, except: 1), inbox: inboxA)
        let portA = try await a.listen(host: "127.0.0.1", port: 0)
        let b2 = try fixture.transport("b", id: 2, peers: Self.members(a: portA, except: 2), inbox: inboxB)
        #expect(a.sendReport([1, 2, 3], to: 2) == false)
        b2.ping(1)
        await PeerTransportTests.waitFor(seconds: 5) { a.wireVersion(of: 2) != nil }
        #expect(a.wireVersion(of: 2) == Frame.version)
        #expect(a.sendReport([1, 2, 3], to: 2))
        await PeerTransportTests.waitFor(seconds: 5) { !inboxB.reports.withLockedValue { $0.isEmpty } }
        let received = inboxB.reports.withLockedValue { $0 }
        #expect(received.count == 1 && received.first?.0 == 1 && received.first?.1 == [1, 2, 3])
        await a.shutdown(); await b.shutdown(); await b2.shutdown()
    }

    /// A notice is answered on the connection it came in on: the dialler hears back before the
    /// other side has dialled it (here it never can: the dialler does not even listen).
    @Test func noticesAreAnsweredOnTheSameConnection() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let inboxA = Inbox(), inboxB = Inbox()
        let b = try fixture.transport("b", id: 2, peers: Self.members(except: 2), inbox: inboxB, answer: { $0 == [0] ? [7, 7] : nil })
        let portB = try await b.listen(host: "127.0.0.1", port: 0)
        let a = try fixture.transport("a", id: 1, peers: Self.members(b: portB, except: 1), inbox: inboxA)
        a.sendNotice([5], to: 2)
        a.sendNotice([0], to: 2)
        await PeerTransportTests.waitFor(seconds: 5) { !inboxA.notices.withLockedValue { $0.isEmpty } }
        #expect(inboxB.notices.withLockedValue { $0.map(\.1) } == [[5], [0]])
        let answers = inboxA.notices.withLockedValue { $0 }
        #expect(answers.count == 1 && answers.first?.0 == 2 && answers.first?.1 == [7, 7])
        await a.shutdown(); await b.shutdown()
    }

    @Test func certificateFromAnotherCAIsRejected() async throws {
        let fixture = try Fixture(), stranger = try Fixture()
        defer { fixture.remove(); stranger.remove() }
        let inbox = Inbox(), strangerInbox = Inbox()
        let a = try fixture.transport("a", id: 1, peers: Self.members(except: 1), inbox: inbox)
        let port = try await a.listen(host: "127.0.0.1", port: 0)
        let b = try stranger.transport("b", id: 2, peers: Self.members(a: port, except: 2), inbox: strangerInbox)
        b.send(Message(from: 2, to: 1, term: 1, kind: .timeoutNow))
        #expect(await strangerInbox.waitForEvent(containing: "handshake"))
        #expect(await inbox.waitForEvent(containing: "handshake"))
        #expect(inbox.messages.withLockedValue { $0.isEmpty })
        await a.shutdown(); await b.shutdown()
    }

    /// Whom a certificate names depends on the whole cluster name and on the scheme: cluster
    /// `c` does not read `c2`'s certificates as its own, and operators and nodes never mix.
    @Test func aCertificateNamesItsSubjectInItsOwnClusterOnly() throws {
        let dir = NSTemporaryDirectory() + "pgquorum-subject-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try ClusterCertificates.create(cluster: "c2", nodes: [NodeIdentity(name: "x", hosts: [])], operators: ["alice"], directory: dir)
        func der(_ path: String) throws -> [UInt8] { try NIOSSLCertificate(file: dir + path, format: .pem).toDERBytes() }
        let node = try der("/x.crt"), person = try der("/operators/alice.crt")
        #expect(PeerIdentity.subject(inCertificateDER: node, cluster: "c2") == .node("x"))
        #expect(PeerIdentity.subject(inCertificateDER: person, cluster: "c2") == .operator("alice"))
        #expect(PeerIdentity.node(inCertificateDER: person, cluster: "c2") == nil)
        for other in ["c", "c2x", ""] {
            #expect(PeerIdentity.subject(inCertificateDER: node, cluster: other) == nil, "\(other)")
            #expect(PeerIdentity.subject(inCertificateDER: person, cluster: other) == nil, "\(other)")
        }
    }

    /// An operator's certificate from the cluster CA is no node's: the peer port refuses it.
    @Test func anOperatorCertificateIsRefusedOnThePeerPort() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let inbox = Inbox(), operatorInbox = Inbox()
        let a = try fixture.transport("a", id: 1, peers: Self.members(except: 1), inbox: inbox)
        let port = try await a.listen(host: "127.0.0.1", port: 0)
        let posing = try fixture.transport("b", id: 2, peers: Self.members(a: port, except: 2), inbox: operatorInbox,
                                           certificateOf: "operators/admin")
        posing.send(Message(from: 2, to: 1, term: 1, kind: .timeoutNow))
        #expect(await inbox.waitForEvent(containing: "peer presented operator admin's certificate; the peer port takes node certificates only"))
        #expect(inbox.messages.withLockedValue { $0.isEmpty })
        await a.shutdown(); await posing.shutdown()
    }

    /// b's certificate is signed by the right CA but expired: the handshake fails.
    @Test func expiredCertificateIsRejected() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let expiredDir = fixture.dir + "-expired"
        defer { try? FileManager.default.removeItem(atPath: expiredDir) }
        try FileManager.default.createDirectory(atPath: expiredDir, withIntermediateDirectories: true)
        for file in ["ca.crt", "ca.key"] {
            try FileManager.default.copyItem(atPath: fixture.dir + "/" + file, toPath: expiredDir + "/" + file)
        }
        _ = try ClusterCertificates.issue(cluster: "lab", nodes: [NodeIdentity(name: "b", hosts: ["127.0.0.1"])],
                                          directory: expiredDir, validity: 86_400, now: Date().addingTimeInterval(-10 * 86_400))
        let inbox = Inbox(), expiredInbox = Inbox()
        let a = try fixture.transport("a", id: 1, peers: Self.members(except: 1), inbox: inbox)
        let port = try await a.listen(host: "127.0.0.1", port: 0)
        let identity = try TransportIdentity(cluster: "lab", node: "b", directory: expiredDir)
        let b = PeerTransport(identity: identity, localID: 2, peers: Self.members(a: port, except: 2), group: fixture.group,
                              onMessage: { _ in }, onEvent: { event in expiredInbox.events.withLockedValue { $0.append("\(event)") } })
        b.send(Message(from: 2, to: 1, term: 1, kind: .timeoutNow))
        #expect(await inbox.waitForEvent(containing: "handshake"))
        #expect(inbox.messages.withLockedValue { $0.isEmpty })
        await a.shutdown(); await b.shutdown()
    }

    /// c holds a valid member certificate but sends messages claiming to be b.
    @Test func memberClaimingAnotherIdentityIsRejected() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let inbox = Inbox(), cInbox = Inbox()
        let a = try fixture.transport("a", id: 1, peers: Self.members(except: 1), inbox: inbox)
        let port = try await a.listen(host: "127.0.0.1", port: 0)
        let c = try fixture.transport("c", id: 3, peers: Self.members(a: port, except: 3), inbox: cInbox)
        c.send(Message(from: 2, to: 1, term: 1, kind: .timeoutNow))
        #expect(await inbox.waitForEvent(containing: "message from n2 to n1 on the connection of n3"))
        #expect(inbox.messages.withLockedValue { $0.isEmpty })
        await a.shutdown(); await c.shutdown()
    }

    /// b's key copied to another machine: a knows b at 127.0.0.2, so b's certificate presented
    /// from 127.0.0.1 is refused; from 127.0.0.2 (the transport binds its source there) it works.
    @Test func aNodesCertificateIsAcceptedOnlyFromItsAddress() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let inbox = Inbox(), stolenInbox = Inbox(), ownInbox = Inbox()
        var peers = Self.members(except: 1)
        peers[0].allowedSources = ["127.0.0.2"]
        let a = try fixture.transport("a", id: 1, peers: peers, inbox: inbox)
        let port = try await a.listen(host: "127.0.0.1", port: 0)
        let heartbeat = Message(from: 2, to: 1, term: 1, kind: .heartbeat(commit: 0, round: 1))

        let stolen = try fixture.transport("b", id: 2, peers: Self.members(a: port, except: 2), inbox: stolenInbox)
        stolen.send(heartbeat)
        #expect(await inbox.waitForEvent(containing: "certificate of b presented from 127.0.0.1, not from its address (127.0.0.2)"))
        #expect(inbox.messages.withLockedValue { $0.isEmpty })
        await stolen.shutdown()

        var options = PeerTransport.Options()
        options.sourceAddress = "127.0.0.2"
        let own = try fixture.transport("b", id: 2, peers: Self.members(a: port, except: 2), inbox: ownInbox, options: options)
        own.send(heartbeat)
        #expect(await inbox.waitForMessages(1) == [heartbeat])
        await a.shutdown(); await own.shutdown()
    }

    /// A node dials "b" but the server there presents c's certificate.
    @Test func dialledPeerWithAnotherIdentityIsRejected() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let inbox = Inbox(), impostorInbox = Inbox()
        let impostor = try fixture.transport("c", id: 3, peers: Self.members(except: 3), inbox: impostorInbox)
        let port = try await impostor.listen(host: "127.0.0.1", port: 0)
        let a = try fixture.transport("a", id: 1, peers: Self.members(b: port, except: 1), inbox: inbox)
        a.send(Message(from: 1, to: 2, term: 1, kind: .timeoutNow))
        #expect(await inbox.waitForEvent(containing: "dialled n2 but its certificate names c"))
        #expect(impostorInbox.messages.withLockedValue { $0.isEmpty })
        await a.shutdown(); await impostor.shutdown()
    }

    /// Raw bytes on a connection: a plaintext client, garbage after a good handshake, a frame over
    /// the cap, an unsupported wire version, an unknown frame type, and a peer that sends nothing. Each is closed with a reason; nothing is delivered.
    /// Connections beyond the inbound limit are closed at accept; the refusal is reported; once
    /// they are gone a peer gets through again.
    @Test func inboundConnectionsBeyondTheLimitAreClosed() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let inbox = Inbox()
        var options = PeerTransport.Options()
        options.inboundLimit = 4
        let a = try fixture.transport("a", id: 1, peers: Self.members(except: 1), inbox: inbox, options: options)
        let port = try await a.listen(host: "127.0.0.1", port: 0)
        var strangers: [Channel] = []
        for _ in 0..<10 { strangers.append(try await ClientBootstrap(group: fixture.group).connect(host: "127.0.0.1", port: port).get()) }
        try await Task.sleep(for: .milliseconds(500))
        #expect(strangers.filter { !$0.isActive }.count == 6)
        #expect(await inbox.waitForEvent(containing: "4 inbound connections are open already"))
        for stranger in strangers { try? await stranger.close() }
        try await Task.sleep(for: .milliseconds(200))
        let b = try fixture.transport("b", id: 2, peers: Self.members(a: port, except: 2), inbox: Inbox())
        let heartbeat = Message(from: 2, to: 1, term: 1, kind: .heartbeat(commit: 0, round: 1))
        b.send(heartbeat)
        #expect(await inbox.waitForMessages(1) == [heartbeat])
        await a.shutdown(); await b.shutdown()
    }

    @Test func plaintextGarbageOversizedAndSilentPeersAreClosed() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let inbox = Inbox()
        var options = PeerTransport.Options()
        options.maximumFrame = 1024
        options.idleTimeout = .milliseconds(1500)
        options.handshakeTimeout = .milliseconds(400)
        let a = try fixture.transport("a", id: 1, peers: Self.members(except: 1), inbox: inbox, options: options)
        let port = try await a.listen(host: "127.0.0.1", port: 0)

        let plain = try await ClientBootstrap(group: fixture.group).connect(host: "127.0.0.1", port: port).get()
        try await plain.writeAndFlush(plain.allocator.buffer(string: "GET / HTTP/1.1\r\n\r\n"))
        try await plain.closeFuture.get()

        let mute = try await ClientBootstrap(group: fixture.group).connect(host: "127.0.0.1", port: port).get()
        #expect(await inbox.waitForEvent(containing: "no authenticated TLS handshake within the handshake timeout"))
        try await mute.closeFuture.get()

        let identity = try TransportIdentity(cluster: "lab", node: "b", directory: fixture.dir)
        func tlsClient(_ bytes: [UInt8]?) async throws -> Channel {
            let channel = try await ClientBootstrap(group: fixture.group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: identity.clientContext, serverHostname: nil))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            if let bytes { try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)) }
            return channel
        }
        let garbage = try await tlsClient([9, 0, 0, 0, 1, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(await inbox.waitForEvent(containing: "undecodable Raft message"))
        try await garbage.closeFuture.get()
        let oversized = try await tlsClient([0, 0, 1, 0, 1, 0, 1])
        #expect(await inbox.waitForEvent(containing: "exceeds the limit of 1024"))
        try await oversized.closeFuture.get()
        // A frame of a wire version this agent does not speak, and a frame type it does not know.
        let oldVersion = try await tlsClient([3, 0, 0, 0, 0, 0, 1])
        #expect(await inbox.waitForEvent(containing: "wire version 0 is not supported"))
        try await oldVersion.closeFuture.get()
        let unknownType = try await tlsClient([3, 0, 0, 0, 1, 0, 0x7F])
        #expect(await inbox.waitForEvent(containing: "unknown frame type 127"))
        try await unknownType.closeFuture.get()
        let silent = try await tlsClient(nil)
        #expect(await inbox.waitForEvent(containing: "sent nothing within the idle timeout"))
        try await silent.closeFuture.get()
        #expect(inbox.messages.withLockedValue { $0.isEmpty })
        await a.shutdown()
    }
}
