import ArgumentParser
import ClusterConfig

/// A command's one-line reason for failing. ArgumentParser prints it as `Error: …` and exits 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Loads a cluster config for a command: on problems, prints one line each and exits 1.
func loadConfig(_ path: String, tlsFiles: TLSFileCheck = .skip) throws -> ClusterConfig {
    do {
        return try ConfigLoader.load(path: path, tlsFiles: tlsFiles)
    } catch {
        for problem in error.problems { print(problem) }
        throw ExitCode.failure
    }
}
