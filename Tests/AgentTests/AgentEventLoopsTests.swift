@testable import Agent
import Foundation
import NIOCore
import NIOPosix
import Testing

@Suite struct AgentEventLoopsTests {
    /// Every thread of NIO's shared group busy (a flood of handshakes on the API, a handler
    /// that blocks) does not hold the peer links' thread: it still runs its work at once.
    @Test func busyAPIThreadsDoNotHoldThePeerThread() throws {
        let names = try AgentEventLoops.peers.makeIterator().map { loop in
            try loop.submit { () -> String in
                let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
                return comm.trimmingCharacters(in: .newlines)
            }.wait()
        }
        #expect(names == ["pgquorum-peers", "pgquorum-peers"])
        let release = DispatchSemaphore(value: 0)
        let busy = MultiThreadedEventLoopGroup.singleton.makeIterator().map { loop in
            loop.submit { _ = release.wait(timeout: .now() + 5) }
        }
        defer {
            for _ in busy { release.signal() }
            for future in busy { _ = try? future.wait() }
        }
        let started = ContinuousClock.now
        try AgentEventLoops.peers.next().submit {}.wait()
        #expect(ContinuousClock.now - started < .seconds(1))
    }
}
