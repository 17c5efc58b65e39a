/// Units the benchmarks print in.
extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Whole microseconds, for latency columns.
func microseconds(_ seconds: Double) -> String { String(Int((seconds * 1_000_000).rounded())) }
