@testable import Agent
import Foundation
import Testing

/// The kernel's name of the calling thread (what `top -H` shows), read from synchronous code
/// (what the Raft task's event handling is).
private func threadName() -> String {
    let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
    return comm.trimmingCharacters(in: .newlines)
}

private func blockThisThread() { Thread.sleep(forTimeInterval: 0.05) }

@Suite struct DedicatedThreadExecutorTests {
    /// A task that prefers the executor runs on its thread, also after every suspension, so
    /// blocking work there never holds a thread of the cooperative pool. Executors are started
    /// from busy pool threads at once: the thread's name once raced with its start (Foundation's
    /// `Thread.name`), and the thread then showed the pool thread's name it inherited.
    @Test func aPreferringTaskStaysOnTheExecutorsThread() async {
        let rounds = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<30 {
                group.addTask {
                    blockThisThread()
                    let executor = DedicatedThreadExecutor(name: "test-dedicated")
                    return await Task(executorPreference: executor) { () -> [String] in
                        var names: [String] = []
                        for _ in 0..<5 {
                            names.append(threadName())
                            try? await Task.sleep(for: .milliseconds(5))
                            await Task.yield()
                        }
                        return names
                    }.value
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(rounds.count == 30)
        for names in rounds { #expect(names == Array(repeating: "test-dedicated", count: 5)) }
        let elsewhere = await Task { threadName() }.value
        #expect(elsewhere != "test-dedicated")
    }
}
