import Testing
@testable import Agent

@Suite struct TickLatenessTests {
    @Test func theWorstDelayOfTheLastWindowsAndTheLateTicksAreKept() {
        let start = ContinuousClock.now
        var lateness = TickLateness()
        lateness.record(.milliseconds(3), ticks: 1, at: start)
        lateness.record(.milliseconds(250), ticks: 3, at: start + .seconds(1))   // two ticks caught up late
        lateness.record(.milliseconds(5), ticks: 1, at: start + .seconds(2))
        #expect(lateness.worst(at: start + .seconds(3)) == .milliseconds(250))
        #expect(lateness.lateTicks == 2)
        // The next window still shows the previous one's worst; two windows later it is gone.
        #expect(lateness.worst(at: start + .seconds(11)) == .milliseconds(250))
        lateness.record(.milliseconds(7), ticks: 1, at: start + .seconds(12))
        #expect(lateness.worst(at: start + .seconds(22)) == .milliseconds(7))
        #expect(lateness.worst(at: start + .seconds(45)) == .zero)
        #expect(lateness.lateTicks == 2)
    }
}
