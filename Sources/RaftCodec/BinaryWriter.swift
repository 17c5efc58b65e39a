/// Little-endian encoding into a byte array.
public struct BinaryWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    public mutating func write(_ value: UInt8) { bytes.append(value) }
    public mutating func write(_ value: UInt16) { append(UInt64(value), width: 2) }
    public mutating func write(_ value: UInt32) { append(UInt64(value), width: 4) }
    public mutating func write(_ value: UInt64) { append(value, width: 8) }

    /// A length-prefixed byte string.
    public mutating func writeBytes(_ value: [UInt8]) {
        write(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func writeRaw(_ value: [UInt8]) { bytes.append(contentsOf: value) }

    private mutating func append(_ value: UInt64, width: Int) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0.prefix(width)) }
    }
}

/// Little-endian decoding that never reads past the end: every read fails cleanly instead.
public struct BinaryReader: Sendable {
    public enum Failure: Error, Equatable, Sendable {
        case truncated(needed: Int, available: Int)
        case invalid(String)
    }

    private let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func readUInt8() throws(Failure) -> UInt8 { UInt8(try read(width: 1)) }
    public mutating func readUInt16() throws(Failure) -> UInt16 { UInt16(try read(width: 2)) }
    public mutating func readUInt32() throws(Failure) -> UInt32 { UInt32(try read(width: 4)) }
    public mutating func readUInt64() throws(Failure) -> UInt64 { try read(width: 8) }

    /// A length-prefixed byte string of at most `limit` bytes.
    public mutating func readBytes(limit: Int = Int(UInt32.max)) throws(Failure) -> [UInt8] {
        let count = Int(try readUInt32())
        guard count <= limit else { throw .invalid("a byte string of \(count) bytes exceeds the limit of \(limit)") }
        return try readRaw(count)
    }

    public mutating func readRaw(_ count: Int) throws(Failure) -> [UInt8] {
        guard count <= remaining else { throw .truncated(needed: count, available: remaining) }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    private mutating func read(width: Int) throws(Failure) -> UInt64 {
        guard width <= remaining else { throw .truncated(needed: width, available: remaining) }
        var value: UInt64 = 0
        for shift in 0..<width { value |= UInt64(bytes[offset + shift]) << (8 * UInt64(shift)) }
        offset += width
        return value
    }
}
