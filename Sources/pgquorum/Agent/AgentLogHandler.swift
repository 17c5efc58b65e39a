import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The agent's log lines on standard error, laid out like swift-log's `StreamLogHandler` but
/// stamped in UTC to the millisecond (`2026-12-04T18:22:53.123+00:00`), so that they line up with
/// each other, with other nodes' logs and with the lab's event log.
struct AgentLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
             source: String, file: String, function: String, line: UInt) {
        let merged = metadata.merging(explicit ?? [:]) { _, new in new }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let text = "\(Self.timestamp()) \(level) \(label):\(fields.isEmpty ? "" : " " + fields) [\(source)] \(message)\n"
        // One write per line, so that lines from several threads never interleave.
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return -1 }
                return write(STDERR_FILENO, base + written, buffer.count - written)
            }
            if result < 0, errno == EINTR { continue }
            if result <= 0 { break }
            written += result
        }
    }

    /// ISO 8601 in UTC, with milliseconds and the offset.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03d+00:00",
                      Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(now.tv_nsec / 1_000_000))
    }
}
