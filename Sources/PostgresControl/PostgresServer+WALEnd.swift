import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the WAL in a data directory's `pg_wal` ends: the position after its last valid record,
/// on the newest timeline that has one.
public struct WALEnd: Sendable, Equatable, CustomStringConvertible {
    public var position: UInt64
    public var timeline: UInt32

    public init(position: UInt64, timeline: UInt32) {
        self.position = position
        self.timeline = timeline
    }

    public var description: String { "\(LSN(position)) on timeline \(timeline)" }
}

extension PostgresServer {
    /// The end of the WAL on disk, read the way `pg_rewind` reads a target: from the last
    /// checkpoint's redo point forward until no valid record follows. For a server that is
    /// stopped or still in crash recovery — a crashed primary's acknowledged commits lie past
    /// its last checkpoint, and this is the only way to know how far before it runs again.
    /// Nil when there is no data directory or the WAL cannot be read.
    public func walEndOnDisk() -> WALEnd? {
        guard let control = controlFile() else { return nil }
        let directory = dataDirectory + "/pg_wal"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
        let segmentBytes = WALHistory.segmentBytes(in: directory, names: names) ?? 16 << 20
        let segments = Set(names.compactMap { WALDumpEnd.segment($0, segmentBytes: segmentBytes) })
        // A newer timeline than the checkpoint's (a promotion with no checkpoint since, or a
        // standby that followed one) starts at its switch point; WAL beyond that is only there.
        var attempts: [(timeline: UInt32, start: UInt64)] = []
        if let newest = WALHistory.newestTimeline(in: directory), newest.timeline > control.timeline {
            attempts.append((newest.timeline, max(control.redo, newest.begins)))
        }
        attempts.append((control.timeline, control.redo))
        for attempt in attempts {
            // pg_waldump waits 5 s for a segment file that is not there: read only the segments
            // that are, from the start's on, and stop at the end of the last of them.
            var last = attempt.start / segmentBytes
            guard segments.contains(WALSegment(timeline: attempt.timeline, number: last)) else { continue }
            while segments.contains(WALSegment(timeline: attempt.timeline, number: last + 1)) { last += 1 }
            let end = (last + 1) * segmentBytes
            let output: String
            do {
                output = try runAllowingFailure("pg_waldump", ["--quiet", "--path", directory, "--timeline", "\(attempt.timeline)",
                                                               "--start", "\(LSN(attempt.start))", "--end", "\(LSN(end))"])
            } catch {
                return nil
            }
            if let position = WALDumpEnd.parse(output, start: attempt.start, end: end, segmentBytes: segmentBytes) {
                return WALEnd(position: position, timeline: attempt.timeline)
            }
        }
        return nil
    }

    /// Changes whenever the WAL on disk may have: a start or a checkpoint rewrites `pg_control`,
    /// a rewind rewrites it too, a clone or a move aside makes another directory, a new segment
    /// changes `pg_wal`, and WAL appended to the newest segment changes that file. A caller keeps
    /// `walEndOnDisk()` until this changes (reading the WAL costs a pass over it).
    public func walFingerprint() -> [Int] {
        let directory = dataDirectory + "/pg_wal"
        let newest = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.count == 24 && $0.allSatisfy(\.isHexDigit) }.max()
        let paths = [dataDirectory, dataDirectory + "/global/pg_control", directory] + (newest.map { [directory + "/" + $0] } ?? [])
        return paths.flatMap { path -> [Int] in
            var info = stat()
            guard stat(path, &info) == 0 else { return [0, 0, 0, 0] }
            return [Int(info.st_ino), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec), Int(info.st_size)]
        }
    }
}

/// One segment file of `pg_wal`: its timeline and its number (position / segment size).
struct WALSegment: Hashable {
    var timeline: UInt32
    var number: UInt64
}

/// Reading `pg_waldump`'s last words: it reads records until one is missing or invalid and then
/// says where. Pure, so each of PostgreSQL's messages is tested.
enum WALDumpEnd {
    /// The position after the last valid record, or nil when it cannot be told. `end` is the
    /// `--end` it was given: a run that reads valid WAL all the way there ends without a word.
    static func parse(_ output: String, start: UInt64, end: UInt64, segmentBytes: UInt64) -> UInt64? {
        let lines = output.split(whereSeparator: \.isNewline).map(String.init)
        if !lines.contains(where: { $0.contains("error") }) { return end }
        for text in lines.reversed() {
            if let range = text.range(of: "error in WAL record at ") {
                // "error in WAL record at <last valid record>: <why the next one is not>"
                let rest = text[range.upperBound...]
                guard let colon = rest.firstIndex(of: ":") else { continue }
                let reason = String(rest[rest.index(after: colon)...])
                // Page-level problems name the page: the WAL ends where that page begins.
                if let page = pagePosition(in: reason, segmentBytes: segmentBytes) { return page }
                // Record-level problems name where the next record should have been. Without
                // a position, say nothing: the last record's start would understate the end.
                return lsns(in: reason).last?.value
            }
            if let range = text.range(of: "could not find file \""), let name = text[range.upperBound...].split(separator: "\"").first,
               let segment = segmentStart(String(name), segmentBytes: segmentBytes) {
                // The WAL ran to the end of the previous segment (the next was never created);
                // a missing first segment means nothing was read.
                return segment > start ? segment : nil
            }
        }
        return nil
    }

    /// "in log segment NAME, offset N" (PostgreSQL 15) or "in WAL segment NAME, LSN X/Y, offset N".
    static func pagePosition(in reason: String, segmentBytes: UInt64) -> UInt64? {
        for marker in ["in log segment ", "in WAL segment "] {
            guard let range = reason.range(of: marker) else { continue }
            let rest = reason[range.upperBound...]
            let name = String(rest.prefix { $0.isHexDigit })
            guard let segment = segmentStart(name, segmentBytes: segmentBytes),
                  let offsetRange = rest.range(of: "offset ") else { continue }
            let digits = rest[offsetRange.upperBound...].prefix { $0.isNumber }
            guard let offset = UInt64(digits) else { continue }
            return segment + offset
        }
        return nil
    }

    /// A WAL segment file's timeline and number (`TTTTTTTTXXXXXXXXYYYYYYYY`).
    static func segment(_ name: String, segmentBytes: UInt64) -> WALSegment? {
        guard name.count == 24, segmentBytes > 0, let timeline = UInt32(name.prefix(8), radix: 16),
              let high = UInt64(name.dropFirst(8).prefix(8), radix: 16), let low = UInt64(name.suffix(8), radix: 16) else { return nil }
        return WALSegment(timeline: timeline, number: high * (0x1_0000_0000 / segmentBytes) + low)
    }

    /// The first position of a WAL segment file.
    static func segmentStart(_ name: String, segmentBytes: UInt64) -> UInt64? {
        segment(name, segmentBytes: segmentBytes).map { $0.number * segmentBytes }
    }

    static func lsns(in text: String) -> [LSN] {
        text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == ":" || $0 == "(" || $0 == ")" }).compactMap { word in
            word.contains("/") ? LSN(String(word)) : nil
        }
    }
}

/// Timeline history files (`NNNNNNNN.history`) and segment files in `pg_wal`.
enum WALHistory {
    /// The newest timeline with a history file, and the position where it branched off.
    static func newestTimeline(in directory: String) -> (timeline: UInt32, begins: UInt64)? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
        let timelines = names.compactMap { name -> UInt32? in
            guard name.hasSuffix(".history"), name.count == 16 else { return nil }
            return UInt32(name.prefix(8), radix: 16)
        }
        guard let newest = timelines.max() else { return nil }
        let file = directory + "/" + String(format: "%08X", newest) + ".history"
        guard let text = UserOwnedFile.read(file) else { return nil }
        return (newest, switchPoint(history: text) ?? 0)
    }

    /// The last line of a history file: "<parent timeline> <switch point> <reason>".
    static func switchPoint(history text: String) -> UInt64? {
        let lines = text.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        guard let last = lines.last else { return nil }
        let fields = last.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2 else { return nil }
        return LSN(String(fields[1]))?.value
    }

    /// The size of the segment files (every one is full size).
    static func segmentBytes(in directory: String, names: [String]) -> UInt64? {
        guard let segment = names.first(where: { $0.count == 24 && $0.allSatisfy(\.isHexDigit) }),
              let attributes = try? FileManager.default.attributesOfItem(atPath: directory + "/" + segment),
              let size = attributes[.size] as? NSNumber, size.uint64Value > 0 else { return nil }
        return size.uint64Value
    }
}
