import Foundation

/// A task executor with a thread of its own. The Raft task prefers it, so the disk syncs it
/// waits for (storage writes are synchronous: persist before send) never hold one of the few
/// threads of Swift's cooperative pool, which the operator API and the peer transport's
/// callbacks need meanwhile (two threads on a two-core machine).
final class DedicatedThreadExecutor: TaskExecutor, @unchecked Sendable {
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    /// Starts the thread; it lives as long as the process (the agent's Raft task does too).
    init(name: String) {
        let thread = Thread { [self] in
            Thread.current.name = name   // on Linux the name set before start does not reach the thread
            runJobs()
        }
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func runJobs() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let batch = jobs
            jobs = []
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }
}
