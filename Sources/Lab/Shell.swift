import Foundation

/// Runs the system tools the lab drives (`ip`, `iptables`), waiting for each to finish.
enum Shell {
    struct Result {
        var status: Int32
        var output: String
    }

    /// Runs `arguments[0]` (found on PATH or in the sbin folders), with `input` on its standard
    /// input, and returns its status and its combined output.
    @discardableResult
    static func run(_ arguments: [String], input: String? = nil) throws(LabError) -> Result {
        guard let tool = arguments.first, let path = locate(tool) else {
            throw LabError("\(arguments.first ?? "?") is not installed; the lab needs iproute2 and iptables (scripts/install-deps.sh installs them)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let stdin = input.map { _ in Pipe() }
        if let stdin { process.standardInput = stdin }
        do {
            try process.run()
        } catch {
            throw LabError("cannot run \(path): \(error)")
        }
        if let stdin, let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try? stdin.fileHandleForWriting.close()
        }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self))
    }

    /// Runs a command that must succeed.
    static func must(_ arguments: [String], input: String? = nil) throws(LabError) {
        let result = try run(arguments, input: input)
        guard result.status == 0 else {
            let output = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
            throw LabError("`\(arguments.joined(separator: " "))` failed (exit \(result.status)): \(output)")
        }
    }

    static func locate(_ tool: String) -> String? {
        if tool.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for directory in path + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
            let candidate = directory + "/" + tool
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
