@testable import Agent
import Synchronization
import Testing

/// Rounds started by a `ReadConfirmations`, completed by the test.
private final class Rounds: Sendable {
    let open = Mutex<[@Sendable (Bool) -> Void]>([])
    let started = Atomic<Int>(0)

    func start(_ respond: @escaping @Sendable (Bool) -> Void) {
        started.add(1, ordering: .relaxed)
        open.withLock { $0.append(respond) }
    }

    func finishOldest(_ confirmed: Bool) {
        let respond = open.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        respond?(confirmed)
    }

    var count: Int { started.load(ordering: .relaxed) }
}

/// Polls `condition` for up to 5 s.
private func eventually(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<500 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

@Suite struct ReadConfirmationsTests {
    @Test func readsDuringARoundShareTheNextOne() async {
        let rounds = Rounds()
        let reads = ReadConfirmations(limit: 1_000) { rounds.start($0) }
        let first = Task { await reads.confirm() }
        #expect(await eventually { rounds.count == 1 })
        // Fifty reads arrive while round 1 is in flight: it began before them, so it proves
        // nothing about them; they wait, and no further round starts meanwhile.
        let later = (0..<50).map { _ in Task { await reads.confirm() } }
        #expect(await eventually { reads.waitingCount == 50 })
        #expect(rounds.count == 1)
        rounds.finishOldest(true)
        #expect(await first.value == true)
        // One round for all fifty.
        #expect(await eventually { rounds.count == 2 })
        rounds.finishOldest(false)
        for read in later { #expect(await read.value == false) }
        #expect(rounds.count == 2)
        // Idle again: the next read starts a round of its own.
        let again = Task { await reads.confirm() }
        #expect(await eventually { rounds.count == 3 })
        rounds.finishOldest(true)
        #expect(await again.value == true)
    }

    @Test func beyondTheLimitAReadIsRefusedAtOnce() async {
        let rounds = Rounds()
        let reads = ReadConfirmations(limit: 3) { rounds.start($0) }
        let first = Task { await reads.confirm() }
        #expect(await eventually { rounds.count == 1 })
        let queued = (0..<3).map { _ in Task { await reads.confirm() } }
        #expect(await eventually { reads.waitingCount == 3 })
        #expect(await reads.confirm() == nil)
        rounds.finishOldest(true)
        #expect(await eventually { rounds.count == 2 })
        rounds.finishOldest(true)
        #expect(await first.value == true)
        for read in queued { #expect(await read.value == true) }
    }
}
