import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// CPU time and memory of a running process, read from /proc.
enum ProcessSample {
    /// utime + stime of a process, from /proc/PID/stat.
    static func cpuSeconds(pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        // Fields after the command name; utime and stime are fields 14 and 15 of the whole line.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident memory: all of it, the private anonymous part (heap, stacks), and the
    /// proportional share (shared code pages divided among the processes that map them).
    static func memory(pid: Int32) -> (rss: Double, anonymous: Double, proportional: Double) {
        func kilobytes(_ file: String, _ key: String) -> Double {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8),
                  let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }),
                  let value = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
            return value
        }
        return (kilobytes("/proc/\(pid)/status", "VmRSS") / 1_024, kilobytes("/proc/\(pid)/status", "RssAnon") / 1_024,
                kilobytes("/proc/\(pid)/smaps_rollup", "Pss") / 1_024)
    }
}
