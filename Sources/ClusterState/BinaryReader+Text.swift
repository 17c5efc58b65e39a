import RaftCodec

extension BinaryReader {
    /// A length-prefixed UTF-8 string of node names and reasons: short, so 64 KiB bounds what
    /// a damaged length can make a decoder read.
    mutating func readShortText() throws(Failure) -> String {
        let bytes = try readBytes(limit: 65_536)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalid("text is not UTF-8") }
        return text
    }
}
