import ArgumentParser

@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgquorum-bench",
        abstract: "Benchmarks that print figures (build with -c release).",
        subcommands: [RaftBenchmark.self, StorageBenchmark.self, TransportBenchmark.self, ElectionBenchmark.self, FootprintBenchmark.self, SoakBenchmark.self, OverloadBenchmark.self, StartupBenchmark.self, FailoverBenchmark.self, LeaseLoadBenchmark.self]
    )
}
