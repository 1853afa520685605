/// CRC-32 as used by PNG chunks and zlib (reflected polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF).
public enum CRC32 {
    private static let table: [UInt32] = (0 ..< 256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0 ..< 8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 of `bytes`, continuing from `previous` (the CRC of the bytes before them; 0 to start).
    public static func checksum<S: Sequence>(_ bytes: S, continuing previous: UInt32 = 0) -> UInt32 where S.Element == UInt8 {
        var c = ~previous
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return ~c
    }
}

/// One PNG chunk: 4-byte type and its data.
public struct PNGChunk: Sendable {
    public let type: String
    public let data: [UInt8]

    /// The chunk as stored: big-endian length, type, data, CRC-32 of type and data.
    var encoded: [UInt8] {
        let typeBytes = Array(type.utf8)
        var out = bigEndian(UInt32(data.count))
        out += typeBytes
        out += data
        out += bigEndian(CRC32.checksum(data, continuing: CRC32.checksum(typeBytes)))
        return out
    }

    private func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }
}

/// PNG text chunks (PNG spec 11.3.4), written the way PIL's `PngInfo.add_text` does:
/// `tEXt` when the value is Latin-1 encodable, otherwise an uncompressed `iTXt` holding UTF-8.
enum PNGText {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The chunk for one key/value pair.
    static func chunk(key: String, value: String) throws -> PNGChunk {
        let scalars = Array(key.unicodeScalars)
        let printable = scalars.allSatisfy { (32 ... 126).contains($0.value) || (161 ... 255).contains($0.value) }
        guard (1 ... 79).contains(scalars.count), printable else {
            throw AnySizeError(.invalidArgument,
                "PNG text key '\(key)' must be 1 to 79 printable Latin-1 characters; use a key such as 'parameters'")
        }
        guard !value.unicodeScalars.contains("\0") else {
            throw AnySizeError(.invalidArgument, "PNG text value for key '\(key)' contains a NUL character, which PNG text cannot store")
        }
        let keyBytes = scalars.map { UInt8($0.value) }
        if value.unicodeScalars.allSatisfy({ $0.value <= 0xFF }) {
            // tEXt: keyword, NUL, Latin-1 text.
            return PNGChunk(type: "tEXt", data: keyBytes + [0] + value.unicodeScalars.map { UInt8($0.value) })
        }
        // iTXt: keyword, NUL, compression flag 0, method 0, empty language tag, NUL, empty translated key, NUL, UTF-8 text.
        return PNGChunk(type: "iTXt", data: keyBytes + [0, 0, 0, 0, 0] + Array(value.utf8))
    }

    /// Inserts `chunks` right after IHDR (where PIL writes text), keeping everything else as is.
    static func insert(_ chunks: [PNGChunk], into png: [UInt8]) -> [UInt8] {
        // Signature (8) + IHDR length (4) + "IHDR" (4) + 13 data bytes + CRC (4).
        let afterHeader = 33
        precondition(png.count > afterHeader && Array(png[12 ..< 16]) == Array("IHDR".utf8), "encoder output is not a PNG")
        return Array(png[..<afterHeader]) + chunks.flatMap(\.encoded) + Array(png[afterHeader...])
    }

    /// All chunks of a PNG stream, checking the signature, bounds and CRCs.
    static func chunks(of png: [UInt8], source: String) throws -> [PNGChunk] {
        guard png.count >= 8, Array(png[0 ..< 8]) == signature else {
            throw AnySizeError(.unsupportedFormat, "'\(source)' is not a PNG file")
        }
        var chunks: [PNGChunk] = []
        var at = 8
        while at < png.count {
            guard at + 12 <= png.count else {
                throw AnySizeError(.corruptFile, "'\(source)' is truncated (chunk header at byte \(at)); the file is damaged")
            }
            let length = png[at ..< at + 4].reduce(0) { $0 << 8 | Int($1) }
            let type = String(decoding: png[at + 4 ..< at + 8], as: UTF8.self)
            guard length <= png.count - at - 12 else {
                throw AnySizeError(.corruptFile, "'\(source)' is truncated in its \(type) chunk; the file is damaged")
            }
            let data = Array(png[at + 8 ..< at + 8 + length])
            let stored = png[at + 8 + length ..< at + 12 + length].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard stored == CRC32.checksum(png[at + 4 ..< at + 8 + length]) else {
                throw AnySizeError(.corruptFile, "'\(source)': CRC mismatch in its \(type) chunk at byte \(at); the file is damaged")
            }
            chunks.append(PNGChunk(type: type, data: data))
            at += 12 + length
            if type == "IEND" { break }
        }
        return chunks
    }

    /// The key/value pair of a `tEXt` or uncompressed `iTXt` chunk; nil for other chunks and for
    /// compressed text (`zTXt`, compressed `iTXt`), which AnySize neither writes nor decodes.
    static func decode(_ chunk: PNGChunk, source: String) throws -> (key: String, value: String)? {
        guard chunk.type == "tEXt" || chunk.type == "iTXt" else { return nil }
        guard let nul = chunk.data.firstIndex(of: 0) else {
            throw AnySizeError(.corruptFile, "'\(source)': \(chunk.type) chunk has no keyword terminator; the file is damaged")
        }
        let key = latin1(chunk.data[..<nul])
        if chunk.type == "tEXt" { return (key, latin1(chunk.data[(nul + 1)...])) }
        // iTXt: flag, method, language tag NUL, translated keyword NUL, text.
        let rest = chunk.data[(nul + 1)...]
        guard rest.count >= 2 else {
            throw AnySizeError(.corruptFile, "'\(source)': iTXt chunk '\(key)' is truncated; the file is damaged")
        }
        if rest[rest.startIndex] != 0 { return nil }
        let afterFlags = rest.dropFirst(2)
        guard let langEnd = afterFlags.firstIndex(of: 0),
              let tkeyEnd = afterFlags[(langEnd + 1)...].firstIndex(of: 0) else {
            throw AnySizeError(.corruptFile, "'\(source)': iTXt chunk '\(key)' is truncated; the file is damaged")
        }
        return (key, String(decoding: chunk.data[(tkeyEnd + 1)...], as: UTF8.self))
    }

    private static func latin1(_ bytes: ArraySlice<UInt8>) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(b)) }
        return String(s)
    }
}
