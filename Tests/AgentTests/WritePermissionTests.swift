import Foundation
import Testing
@testable import Agent
@testable import PostgresControl
#if canImport(Glibc)
import Glibc
#endif

/// A fence keeper's line whose messages the test reads from the other end of the socket pair.
private final class KeeperPipe {
    let line: FenceLine
    private let readEnd: Int32

    init() throws {
        var ends: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        readEnd = ends[0]
        _ = fcntl(readEnd, F_SETFL, O_NONBLOCK)
        line = FenceLine(descriptor: ends[1])
    }

    deinit {
        line.close()
        close(readEnd)
    }

    /// What the keeper was told since the last call: a deadline (> 1), 1 (freeze now: the
    /// deadline passed), -2 (stop now).
    func told() -> [Int64] {
        var messages: [Int64] = []
        var value: Int64 = 0
        while read(readEnd, &value, 8) == 8 { messages.append(value) }
        return messages
    }
}

/// The one write permission (issue 16, race 1): the keeper always enforces the latest word of
/// the Raft task, whatever the PostgreSQL thread read before.
@Suite struct WritePermissionTests {
    private let termFive = WritePermission.Grant(term: 5, epoch: 3)

    @Test func theKeeperHoldsTheDeadlineAndStopsAtAStop() throws {
        let keeper = try KeeperPipe()
        let permission = WritePermission()
        permission.attach(keeper.line)
        #expect(keeper.told().isEmpty, "a standby's keeper is not armed")
        permission.allow(until: .now + .seconds(1), grant: termFive)
        #expect(keeper.told().map { $0 > 1 } == [true])
        #expect(permission.deadline() != nil)
        permission.stop()
        #expect(keeper.told() == [-2])
        #expect(!permission.keeperEnforces && permission.lapsedGrant == nil)
        // The PostgreSQL thread still holds an intent writable for another second: it must not
        // promote (the old code re-armed the keeper from that intent here).
        #expect(permission.deadline() == nil)
    }

    @Test func aRevokeWhilePostgresRestartsIsNotLost() throws {
        let permission = WritePermission()
        permission.allow(until: .now + .seconds(1), grant: termFive)
        permission.attach(nil)          // the postmaster stopped: no keeper to tell
        permission.stop()               // a TimeoutNow went out meanwhile
        let keeper = try KeeperPipe()
        permission.attach(keeper.line)  // the new postmaster
        #expect(keeper.told().isEmpty, "the new keeper was armed with a revoked permission")
        #expect(permission.deadline() == nil)
    }

    @Test func aNewPostmasterIsArmedFromTheCurrentPermission() throws {
        let permission = WritePermission()
        permission.allow(until: .now + .seconds(1), grant: termFive)
        let keeper = try KeeperPipe()
        permission.attach(keeper.line)
        #expect(keeper.told().map { $0 > 1 } == [true])
        #expect(permission.deadline() != nil)
    }

    @Test func aPastDeadlineAllowsNothing() throws {
        let keeper = try KeeperPipe()
        let permission = WritePermission()
        permission.attach(keeper.line)
        permission.allow(until: .now - .milliseconds(1), grant: termFive)
        #expect(keeper.told() == [1], "a deadline already past ends writes at once")
        #expect(permission.deadline() == nil)
    }

    /// A blip: the lease lapses and comes back in the same term and epoch. The keeper froze the
    /// server and is told the next deadline, which continues it; nothing stops it.
    @Test func aLeaseRegainedInTheSameTermContinuesTheFrozenServer() throws {
        let keeper = try KeeperPipe()
        let permission = WritePermission()
        permission.attach(keeper.line)
        permission.allow(until: .now + .seconds(1), grant: termFive)
        _ = keeper.told()
        permission.lapse()
        #expect(keeper.told() == [1])
        #expect(permission.lapsedGrant != nil && permission.keeperEnforces, "the frozen server is the keeper's, not the PostgreSQL thread's")
        #expect(permission.deadline() == nil)
        permission.allow(until: .now + .seconds(1), grant: termFive)
        #expect(keeper.told().map { $0 > 1 } == [true])
        #expect(permission.lapsedGrant == nil && permission.deadline() != nil)
    }

    /// A lease of another term or epoch never continues a frozen server: another node may have
    /// been primary in between, and a backend continued now could acknowledge a commit it lost.
    @Test func aLeaseOfAnotherTermOrEpochStopsTheFrozenServerFirst() throws {
        for next in [WritePermission.Grant(term: 6, epoch: 3), WritePermission.Grant(term: 5, epoch: 4)] {
            let keeper = try KeeperPipe()
            let permission = WritePermission()
            permission.attach(keeper.line)
            permission.allow(until: .now + .seconds(1), grant: termFive)
            permission.lapse()
            _ = keeper.told()
            permission.allow(until: .now + .seconds(1), grant: next)
            let told = keeper.told()
            #expect(told.first == -2 && told.count == 2 && told[1] > 1, "\(next): \(told)")
        }
    }

    /// Renewals of one grant, and a new grant while the previous one still holds (nothing froze),
    /// only move the deadline.
    @Test func renewalsOnlyMoveTheDeadline() throws {
        let keeper = try KeeperPipe()
        let permission = WritePermission()
        permission.attach(keeper.line)
        permission.allow(until: .now + .seconds(1), grant: termFive)
        permission.allow(until: .now + .seconds(2), grant: termFive)
        permission.allow(until: .now + .seconds(2), grant: .init(term: 5, epoch: 4))
        #expect(keeper.told().allSatisfy { $0 > 1 })
    }

    /// A server started after a lapse holds no grant: if it is a primary the PostgreSQL thread
    /// must stop it itself (nobody granted it anything).
    @Test func aNewServerAfterALapseHoldsNoGrant() throws {
        let permission = WritePermission()
        permission.allow(until: .now + .seconds(1), grant: termFive)
        permission.lapse()
        let keeper = try KeeperPipe()
        permission.attach(keeper.line)
        #expect(keeper.told().isEmpty)
        #expect(!permission.keeperEnforces && permission.lapsedGrant == nil)
    }
}
