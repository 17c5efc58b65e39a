import CProcessSpawn
import Foundation
@testable import PostgresControl
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A process tree in the shape of a postmaster's (a parent and the children it forked), watched
/// by a real fence keeper: what the keeper does to every process of it.
private final class KeptTree {
    let parent: pid_t
    let keeper: pid_t
    let line: FenceLine
    /// The parent's two children, found once they are forked.
    private(set) var children: [pid_t] = []
    private var reaped = false

    init(freezeLimit: Duration) throws {
        let script = "sleep 60 & sleep 60 & wait"
        let words: [String] = ["/bin/sh", "-c", script]
        let argv = words.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        parent = argv.withUnsafeBufferPointer { pgq_spawn("/bin/sh", $0.baseAddress, -1, -1, -1, -1, -1, SIGKILL) }
        try #require(parent > 0)
        var ends: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        keeper = pgq_spawn_fence_keeper(parent, ends[0], freezeLimit.nanoseconds)
        close(ends[0])
        try #require(keeper > 0)
        line = FenceLine(descriptor: ends[1])
        // Both children forked.
        for _ in 0..<200 where children.count < 2 {
            usleep(5_000)
            children = currentChildren()
        }
        try #require(children.count == 2)
    }

    deinit {
        line.close()
        kill(parent, SIGKILL)
        for child in currentChildren() { kill(child, SIGKILL) }
        kill(parent, SIGCONT)
        reap()
        var status: Int32 = 0
        _ = waitpid(keeper, &status, 0)
    }

    /// The parent's children now (found by their parent PID, as the keeper finds them).
    func currentChildren() -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { Int32($0) }.filter { Self.stat($0)?.parent == parent }
    }

    /// Every process of the tree (the parent first) with its state letter; a dead one is "-".
    func states() -> String {
        ([parent] + children).map { pid in
            guard let stat = Self.stat(pid), stat.state != "Z" else { return "-" }
            return String(stat.state)
        }.joined()
    }

    func reap() {
        guard !reaped else { return }
        var status: Int32 = 0
        if waitpid(parent, &status, WNOHANG) == parent { reaped = true }
    }

    /// Waits (bounded) until the tree's states are `expected`; returns the last ones seen.
    func wait(for expected: String, within: Duration = .seconds(2)) -> String {
        let deadline = ContinuousClock.now + within
        var seen = states()
        while seen != expected, ContinuousClock.now < deadline {
            usleep(5_000)
            reap()
            seen = states()
        }
        return seen
    }

    /// Arms the keeper, then revokes: returns the states once the tree is frozen ("TTT").
    func freeze() -> String {
        line.allowWrites(for: .seconds(30))
        line.revoke()
        return wait(for: "TTT")
    }

    private static func stat(_ pid: pid_t) -> (state: Character, parent: pid_t)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 1, let state = fields[0].first, let parent = Int32(fields[1]) else { return nil }
        return (state, parent)
    }
}

/// The fence keeper ends a primary's writes when its lease lapses by freezing the whole process
/// tree, so that a blip costs a stall instead of a restart (issue 19, item 4).
/// Serialized: each test waits in a blocking loop, which in parallel would hold both threads of
/// the cooperative pool that the run's asynchronous tests need.
@Suite(.serialized) struct FenceKeeperTests {
    @Test func aPassedDeadlineFreezesEveryProcessAndANewOneContinuesThem() throws {
        let tree = try KeptTree(freezeLimit: .seconds(30))
        tree.line.allowWrites(for: .milliseconds(100))
        #expect(tree.states() == "SSS")
        #expect(tree.wait(for: "TTT") == "TTT", "frozen once the deadline passed")
        tree.line.allowWrites(for: .seconds(30))
        #expect(tree.wait(for: "SSS") == "SSS", "continued by a new deadline")
    }

    @Test func aFrozenTreeIsKilledAfterTheFreezeLimit() throws {
        let tree = try KeptTree(freezeLimit: .milliseconds(300))
        #expect(tree.freeze() == "TTT")
        #expect(tree.wait(for: "---") == "---", "killed as it stood once the limit passed")
    }

    @Test func aStopKillsAFrozenTreeAtOnce() throws {
        let tree = try KeptTree(freezeLimit: .seconds(30))
        #expect(tree.freeze() == "TTT")
        tree.line.stopNow()
        #expect(tree.wait(for: "---", within: .seconds(1)) == "---")
    }

    /// The agent died (its end of the socket pair closed) while the server was frozen: nothing is left
    /// frozen, nothing continues.
    @Test func theAgentsDeathKillsAFrozenTree() throws {
        let tree = try KeptTree(freezeLimit: .seconds(30))
        #expect(tree.freeze() == "TTT")
        tree.line.close()
        #expect(tree.wait(for: "---", within: .seconds(1)) == "---")
    }

    /// Without a freeze limit the keeper stops the server at once (SIGQUIT), as before freezing.
    @Test func withoutAFreezeLimitAPassedDeadlineStopsTheServer() throws {
        let tree = try KeptTree(freezeLimit: .zero)
        tree.line.allowWrites(for: .milliseconds(50))
        // SIGQUIT ends the shell; its children (not a real postmaster's) are left running.
        #expect(tree.wait(for: "-SS").first == "-")
    }

    /// The keeper exits with its postmaster; the Raft task may renew the deadline before the
    /// PostgreSQL thread notices. That write must fail quietly: over a pipe it raised SIGPIPE,
    /// which ends the agent.
    @Test func aLineWhoseKeeperIsGoneNeverKillsTheAgent() throws {
        let tree = try KeptTree(freezeLimit: .zero)
        kill(tree.parent, SIGKILL)
        var status: Int32 = 0
        #expect(waitpid(tree.keeper, &status, 0) == tree.keeper, "the keeper exits with its postmaster")
        tree.line.allowWrites(for: .seconds(1))
        tree.line.revoke()
        tree.line.stopNow()
    }
}
