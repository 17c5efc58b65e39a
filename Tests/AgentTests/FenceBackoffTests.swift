import Testing
@testable import Agent

@Suite struct FenceBackoffTests {
    @Test func repeatedFencesInOneTermBackOffAndANewTermStartsAfresh() {
        let t0 = ContinuousClock.now
        var backoff = FenceBackoff()
        #expect(backoff.remaining(term: 7, at: t0) == nil)
        backoff.fenced(term: 7, at: t0)                                               // the first: restart at once
        #expect(backoff.remaining(term: 7, at: t0) == nil)
        backoff.fenced(term: 7, at: t0 + .seconds(1))                                 // the second: 1 s
        #expect(backoff.remaining(term: 7, at: t0 + .seconds(1)) == .seconds(1))
        #expect(backoff.remaining(term: 7, at: t0 + .seconds(2)) == nil)
        backoff.fenced(term: 7, at: t0 + .seconds(3))                                 // the third: 2 s
        #expect(backoff.remaining(term: 7, at: t0 + .milliseconds(4_500)) == .milliseconds(500))
        for _ in 0..<20 { backoff.fenced(term: 7, at: t0 + .seconds(10)) }            // capped
        #expect(backoff.fences == 23)
        #expect(backoff.remaining(term: 7, at: t0 + .seconds(10)) == .seconds(30))
        #expect(backoff.remaining(term: 8, at: t0 + .seconds(10)) == nil, "another term is not held back")
        backoff.fenced(term: 8, at: t0 + .seconds(11))                                // a new term starts afresh
        #expect(backoff.fences == 1)
        #expect(backoff.remaining(term: 8, at: t0 + .seconds(11)) == nil)
    }

    @Test func theDelaysDouble() {
        let backoff = FenceBackoff()
        #expect((1...8).map { backoff.delay(after: $0) } == [.zero, .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30)])
    }
}
