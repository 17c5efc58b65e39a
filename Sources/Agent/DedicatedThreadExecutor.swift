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
            Self.nameCurrentThread(name)
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

    /// Names the calling thread for `top -H`, `ps -L` and debuggers. Foundation's `Thread.name`
    /// does not do it reliably on Linux: a name set before `start()` never reaches the thread,
    /// and one set from inside races with `start()` recording the thread, so now and then the
    /// thread kept the name it inherited from its creator (a cooperative pool thread's). The
    /// kernel's own interface does not race; Linux keeps 15 bytes of a name.
    static func nameCurrentThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
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
