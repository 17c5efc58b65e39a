import Foundation
import Testing
@testable import Agent
@testable import PostgresControl
#if canImport(Glibc)
import Glibc
#endif

/// A fence keeper's line whose messages the test reads from the other end of the pipe.
private final class KeeperPipe {
    let line: FenceLine
    private let readEnd: Int32

    init() throws {
        var ends: [Int32] = [-1, -1]
        try #require(pipe(&ends) == 0)
        readEnd = ends[0]
        _ = fcntl(readEnd, F_SETFL, O_NONBLOCK)
        line = FenceLine(descriptor: ends[1])
    }

    deinit {
        line.close()
        close(readEnd)
    }

    /// What the keeper was told since the last call: a deadline (> 1), or 1 (stop now).
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
    @Test func theKeeperHoldsTheDeadlineAndStopsAtARevoke() throws {
        let keeper = try KeeperPipe()
        let permission = WritePermission()
        permission.attach(keeper.line)
        #expect(keeper.told().isEmpty, "a standby's keeper is not armed")
        permission.allow(until: .now + .seconds(1))
        #expect(keeper.told().map { $0 > 1 } == [true])
        #expect(permission.deadline() != nil)
        permission.revoke()
        #expect(keeper.told() == [1])
        // The PostgreSQL thread still holds an intent writable for another second: it must not
        // promote (the old code re-armed the keeper from that intent here).
        #expect(permission.deadline() == nil)
    }

    @Test func aRevokeWhilePostgresRestartsIsNotLost() throws {
        let permission = WritePermission()
        permission.allow(until: .now + .seconds(1))
        permission.attach(nil)          // the postmaster stopped: no keeper to tell
        permission.revoke()             // a TimeoutNow went out meanwhile
        let keeper = try KeeperPipe()
        permission.attach(keeper.line)  // the new postmaster
        #expect(keeper.told().isEmpty, "the new keeper was armed with a revoked permission")
        #expect(permission.deadline() == nil)
    }

    @Test func aNewPostmasterIsArmedFromTheCurrentPermission() throws {
        let permission = WritePermission()
        permission.allow(until: .now + .seconds(1))
        let keeper = try KeeperPipe()
        permission.attach(keeper.line)
        #expect(keeper.told().map { $0 > 1 } == [true])
        #expect(permission.deadline() != nil)
    }

    @Test func aPastDeadlineAllowsNothing() throws {
        let keeper = try KeeperPipe()
        let permission = WritePermission()
        permission.attach(keeper.line)
        permission.allow(until: .now - .milliseconds(1))
        #expect(keeper.told() == [1], "a deadline already past stops PostgreSQL at once")
        #expect(permission.deadline() == nil)
    }
}
