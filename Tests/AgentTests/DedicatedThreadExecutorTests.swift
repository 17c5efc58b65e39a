@testable import Agent
import Foundation
import Testing

/// The current thread's name, from synchronous code (what the Raft task's event handling is).
private func threadName() -> String { Thread.current.name ?? "" }

@Suite struct DedicatedThreadExecutorTests {
    /// A task that prefers the executor runs on its thread, also after every suspension, so
    /// blocking work there never holds a thread of the cooperative pool.
    @Test func aPreferringTaskStaysOnTheExecutorsThread() async {
        let executor = DedicatedThreadExecutor(name: "test-dedicated")
        let names = await Task(executorPreference: executor) { () -> [String] in
            var names: [String] = []
            for _ in 0..<5 {
                names.append(threadName())
                try? await Task.sleep(for: .milliseconds(5))
                await Task.yield()
            }
            return names
        }.value
        #expect(names == Array(repeating: "test-dedicated", count: 5))
        let elsewhere = await Task { threadName() }.value
        #expect(elsewhere != "test-dedicated")
    }
}
