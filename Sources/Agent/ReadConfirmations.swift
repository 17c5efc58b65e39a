import Synchronization

/// Linearizable reads share ReadIndex rounds. A round proves leadership only for reads that
/// arrived before it started, so a read that arrives while one is in flight waits for the next:
/// at most one round runs and one batch waits, however many reads come in. Beyond `limit`
/// waiting reads a read is refused at once (the API answers 503 with Retry-After), so a flood
/// of `GET /cluster` can neither queue without bound nor multiply heartbeat rounds.
final class ReadConfirmations: Sendable {
    let limit: Int
    /// Starts one round with the Raft task; calls back with its outcome.
    private let startRound: @Sendable (@escaping @Sendable (Bool) -> Void) -> Void
    private struct State {
        var inFlight = false
        var waiting: [CheckedContinuation<Bool, Never>] = []
    }
    private let state = Mutex(State())

    init(limit: Int, startRound: @escaping @Sendable (@escaping @Sendable (Bool) -> Void) -> Void) {
        self.limit = limit
        self.startRound = startRound
    }

    /// Reads waiting for the next round.
    var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// True when a round that started after this call confirmed the leadership; false when it
    /// did not; nil when too many reads wait already.
    func confirm() async -> Bool? {
        enum Admission { case refused, queued, startsRound }
        var admission = Admission.queued
        let confirmed = await withCheckedContinuation { (answer: CheckedContinuation<Bool, Never>) in
            admission = state.withLock { state in
                guard state.waiting.count < limit else { return .refused }
                state.waiting.append(answer)
                guard !state.inFlight else { return .queued }
                state.inFlight = true
                return .startsRound
            }
            switch admission {
            case .refused: answer.resume(returning: false)
            case .queued: break   // the round in flight starts the next one when it ends
            case .startsRound: startNextRound()
            }
        }
        return admission == .refused ? nil : confirmed
    }

    private func startNextRound() {
        let batch = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            let batch = state.waiting
            state.waiting = []
            if batch.isEmpty { state.inFlight = false }
            return batch
        }
        guard !batch.isEmpty else { return }
        startRound { [self] confirmed in
            for waiter in batch { waiter.resume(returning: confirmed) }
            startNextRound()
        }
    }
}
