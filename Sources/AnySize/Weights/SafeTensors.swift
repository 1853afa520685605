import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element types of the safetensors format (the header's `dtype` strings).
public enum SafeTensorsDType: String, CaseIterable, Sendable, Comparable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32", i64 = "I64", u64 = "U64", f64 = "F64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e4m3, .f8e5m2: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .i64, .u64, .f64: return 8
        }
    }

    /// Whether `SafeTensorsFile.tensor(_:)` can convert this type to float32.
    public var isConvertibleToFloat32: Bool { self == .f16 || self == .bf16 || self == .f32 || self == .f64 || self == .u8 }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A `.safetensors` file, memory-mapped read-only and validated on open.
///
/// Layout: 8-byte little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then the data
/// section; offsets are relative to the data section. Every entry is checked when the file is opened
/// (known dtype, non-negative shape, byte length = element count x element size, range inside the data
/// section, no two ranges overlapping), so `tensor(_:)` never reads outside the mapping.
/// Tensors are converted to float32 one at a time, straight from the mapping.
public final class SafeTensorsFile {
    /// One header entry.
    public struct Entry: Sendable {
        public let dtype: SafeTensorsDType
        public let shape: [Int]
        /// Byte range within the data section.
        public let dataRange: Range<Int>
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// Path the file was opened from (used in every message).
    public let path: String
    /// Free-form `__metadata__` strings (empty when absent).
    public let metadata: [String: String]
    /// Header entries by tensor name.
    public let entries: [String: Entry]
    private let mapping: UnsafeMutableRawPointer?
    private let mappedLength: Int
    private let dataStart: Int

    /// Opens and validates `path`; throws `AnySizeError` naming the file (and tensor) on any defect.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw AnySizeError(errno == ENOENT ? .fileNotFound : .io, "\(path): cannot open (\(reason))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw AnySizeError(.io, "\(path): cannot read file size (\(String(cString: strerror(errno))))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw AnySizeError(.unsupportedFormat, "\(path): not a regular file; pass a .safetensors file")
        }
        let fileSize = Int(info.st_size)
        guard fileSize >= 8 else {
            throw AnySizeError(.corruptFile,
                "\(path): file is \(fileSize) bytes, shorter than the 8-byte safetensors header; the file is empty or truncated, download it again")
        }
        guard let base = mmap(nil, fileSize, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw AnySizeError(.io, "\(path): cannot memory-map the file (\(String(cString: strerror(errno))))")
        }
        mapping = base
        mappedLength = fileSize
        // Until every stored property is set, a throw would skip deinit: unmap on the error paths below.
        var parsed: (metadata: [String: String], entries: [String: Entry], dataStart: Int)
        do {
            parsed = try SafeTensorsFile.parseHeader(UnsafeRawPointer(base), fileSize: fileSize, path: path)
        } catch {
            munmap(base, fileSize)
            throw error
        }
        metadata = parsed.metadata
        entries = parsed.entries
        dataStart = parsed.dataStart
    }

    deinit {
        if let mapping { munmap(mapping, mappedLength) }
    }

    /// Tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// Element type of `name`, or nil if absent.
    public func dtype(of name: String) -> SafeTensorsDType? { entries[name]?.dtype }

    /// Shape of `name`, or nil if absent.
    public func shape(of name: String) -> [Int]? { entries[name]?.shape }

    /// Number of tensors of each element type.
    public var dtypeCounts: [SafeTensorsDType: Int] {
        var counts: [SafeTensorsDType: Int] = [:]
        for entry in entries.values { counts[entry.dtype, default: 0] += 1 }
        return counts
    }

    /// Total number of elements over all tensors.
    public var elementCount: Int { entries.values.reduce(0) { $0 + $1.elementCount } }

    /// Reads `name` converted to float32 (F32, F16, BF16 and F64; F16/BF16 conversion is exact).
    public func tensor(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else {
            throw AnySizeError(.missingTensor, "\(path): no tensor named '\(name)'")
        }
        guard entry.dtype.isConvertibleToFloat32 else {
            throw AnySizeError(.unsupportedFormat,
                "\(path): tensor '\(name)' has dtype \(entry.dtype.rawValue); only F32, F16, BF16, F64 (and U8 image data) are supported")
        }
        let out = Tensor(zeros: entry.shape)
        guard let mapping, entry.elementCount > 0 else { return out }
        let source = UnsafeRawPointer(mapping) + dataStart + entry.dataRange.lowerBound
        FloatConversion.convert(source, dtype: entry.dtype, count: entry.elementCount, into: out.pointer)
        releasePages(source, byteCount: entry.dataRange.count)
        return out
    }

    /// Drops the mapped file pages that lie wholly inside a tensor just copied out, so the copy and the
    /// file's pages are not resident together while a model loads (peak memory: one copy of the weights,
    /// not two). The mapping is private and read-only: a later read of the range faults the file back in.
    private func releasePages(_ start: UnsafeRawPointer, byteCount: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let first = (Int(bitPattern: start) + page - 1) / page * page
        let end = (Int(bitPattern: start) + byteCount) / page * page
        guard end > first, let pointer = UnsafeMutableRawPointer(bitPattern: first) else { return }
        _ = madvise(pointer, end - first, Int32(MADV_DONTNEED))
    }

    // MARK: - Header

    private static func parseHeader(_ base: UnsafeRawPointer, fileSize: Int, path: String)
        throws -> (metadata: [String: String], entries: [String: Entry], dataStart: Int) {
        var headerLength: UInt64 = 0
        for i in 0 ..< 8 { headerLength |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << (8 * UInt64(i)) }
        guard headerLength > 0, headerLength <= UInt64(fileSize - 8) else {
            throw AnySizeError(.corruptFile,
                "\(path): header length \(headerLength) does not fit in the \(fileSize)-byte file; the file is truncated or not a safetensors file")
        }
        let dataStart = 8 + Int(headerLength)
        let dataSize = fileSize - dataStart
        let headerData = Data(bytes: base + 8, count: Int(headerLength))
        // JSON decoders keep one of two equal keys silently; a header that names a tensor twice is refused.
        if let duplicate = JSONDuplicateKeys.first(in: headerData) {
            throw AnySizeError(.corruptFile, "\(path): the header has the key '\(duplicate)' twice; the file is corrupt or was edited by hand")
        }
        let header: SafeTensorsHeader
        do {
            header = try JSONDecoder().decode(SafeTensorsHeader.self, from: headerData)
        } catch let error as AnySizeError {
            throw AnySizeError(error.kind, "\(path): \(error.message)")
        } catch {
            throw AnySizeError(.corruptFile,
                "\(path): the header is not valid safetensors JSON (\(oneLineDescription(error))); the file is corrupt or not a safetensors file")
        }

        var entries: [String: Entry] = [:]
        for (name, raw) in header.tensors {
            guard let dtype = SafeTensorsDType(rawValue: raw.dtype) else {
                throw AnySizeError(.unsupportedFormat, "\(path): tensor '\(name)' has unknown dtype '\(raw.dtype)'")
            }
            guard raw.shape.allSatisfy({ $0 >= 0 }) else {
                throw AnySizeError(.corruptFile, "\(path): tensor '\(name)' has a negative dimension in shape \(raw.shape)")
            }
            var byteCount = raw.shape.contains(0) ? 0 : dtype.byteSize
            for d in raw.shape where byteCount > 0 {
                let (product, overflow) = byteCount.multipliedReportingOverflow(by: d)
                guard !overflow else {
                    throw AnySizeError(.corruptFile, "\(path): tensor '\(name)' shape \(raw.shape) is too large; the file is corrupt")
                }
                byteCount = product
            }
            guard raw.dataOffsets.count == 2 else {
                throw AnySizeError(.corruptFile, "\(path): tensor '\(name)' data_offsets must be [begin, end], got \(raw.dataOffsets)")
            }
            let begin = raw.dataOffsets[0], end = raw.dataOffsets[1]
            guard begin >= 0, end >= begin else {
                throw AnySizeError(.corruptFile, "\(path): tensor '\(name)' has data_offsets [\(begin), \(end)] with end before begin")
            }
            guard end <= dataSize else {
                throw AnySizeError(.corruptFile,
                    "\(path): tensor '\(name)' data_offsets [\(begin), \(end)] run past the \(dataSize)-byte data section; the file is truncated")
            }
            guard end - begin == byteCount else {
                throw AnySizeError(.corruptFile,
                    "\(path): tensor '\(name)' occupies \(end - begin) bytes but \(dtype.rawValue) \(raw.shape) needs \(byteCount)")
            }
            entries[name] = Entry(dtype: dtype, shape: raw.shape, dataRange: begin ..< end)
        }

        // Ranges must not share bytes (empty tensors occupy nothing and cannot overlap).
        let occupied = entries.filter { !$0.value.dataRange.isEmpty }
            .sorted { ($0.value.dataRange.lowerBound, $0.key) < ($1.value.dataRange.lowerBound, $1.key) }
        for (previous, next) in zip(occupied, occupied.dropFirst())
        where next.value.dataRange.lowerBound < previous.value.dataRange.upperBound {
            throw AnySizeError(.corruptFile,
                "\(path): tensors '\(previous.key)' and '\(next.key)' overlap in the data section; the file is corrupt")
        }
        return (header.metadata, entries, dataStart)
    }
}

/// The JSON header: tensor entries keyed by name plus the optional `__metadata__` string map.
private struct SafeTensorsHeader: Decodable {
    struct RawEntry: Decodable {
        let dtype: String
        let shape: [Int]
        let dataOffsets: [Int]
        enum CodingKeys: String, CodingKey { case dtype, shape, dataOffsets = "data_offsets" }
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    var tensors: [String: RawEntry] = [:]
    var metadata: [String: String] = [:]

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys {
            if key.stringValue == "__metadata__" {
                do {
                    metadata = try container.decode([String: String].self, forKey: key)
                } catch {
                    throw AnySizeError(.corruptFile, "__metadata__ must map strings to strings (\(oneLineDescription(error)))")
                }
                continue
            }
            do {
                tensors[key.stringValue] = try container.decode(RawEntry.self, forKey: key)
            } catch {
                throw AnySizeError(.corruptFile,
                    "tensor '\(key.stringValue)' has a malformed header entry (\(oneLineDescription(error))); the file is corrupt")
            }
        }
    }
}

/// A one-line summary of a Foundation / decoding error, for messages.
func oneLineDescription(_ error: Error) -> String {
    let text: String
    switch error {
    case DecodingError.dataCorrupted(let context), DecodingError.keyNotFound(_, let context),
         DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
        let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
        text = [path.isEmpty ? nil : "at \(path)", context.debugDescription, underlying]
            .compactMap { $0 }.joined(separator: ": ")
    default:
        text = String(describing: error)
    }
    return text.split(whereSeparator: \.isNewline).joined(separator: " ")
}

/// Element conversions to float32. F16 and BF16 are widened by bit manipulation, which is exact
/// for every input (subnormals, infinities, NaN payloads) and matches PyTorch's `.float()`.
enum FloatConversion {
    /// IEEE half bits to float: sign, exponent rebias (15 -> 127), mantissa shift; subnormals are
    /// `m * 2^-24`, exactly representable in float.
    @inline(__always)
    static func float(fromHalf h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1f
        let mantissa = UInt32(h & 0x3ff)
        if exponent == 0x1f { return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13)) }
        if exponent != 0 { return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13)) }
        return Float(bitPattern: (Float(mantissa) * 0x1p-24).bitPattern | sign)
    }

    /// bfloat16 is the top half of a float32.
    @inline(__always)
    static func float(fromBFloat16 b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// The index of the first NaN or infinity among `count` floats, or nil.
    static func firstNonFinite(_ values: UnsafePointer<Float>, count: Int) -> Int? {
        let lock = NSLock()
        var first: Int?
        Parallel.forRanges(count, minimumPerThread: 1 << 18) { range in
            // x * 0 is 0 for a finite x and NaN otherwise: a block's sum of them is NaN exactly when it holds one.
            var i = range.lowerBound
            while i < range.upperBound {
                let end = min(i + 1024, range.upperBound)
                var block: Float = 0
                for j in i ..< end { block += values[j] * 0 }
                if !block.isFinite, let bad = (i ..< end).first(where: { !values[$0].isFinite }) {
                    lock.lock()
                    first = min(first ?? bad, bad)
                    lock.unlock()
                    return
                }
                i = end
            }
        }
        return first
    }

    /// Converts `count` little-endian elements at `source` (any alignment) into `destination`.
    static func convert(_ source: UnsafeRawPointer, dtype: SafeTensorsDType, count: Int,
                        into destination: UnsafeMutablePointer<Float>) {
        Parallel.forRanges(count, minimumPerThread: 1 << 16) { range in
            switch dtype {
            case .f32:
                UnsafeMutableRawPointer(destination + range.lowerBound)
                    .copyMemory(from: source + range.lowerBound * 4, byteCount: range.count * 4)
            case .f16:
                for i in range { destination[i] = float(fromHalf: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
            case .bf16:
                for i in range { destination[i] = float(fromBFloat16: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
            case .f64:
                for i in range { destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            case .u8:
                for i in range { destination[i] = Float(source.load(fromByteOffset: i, as: UInt8.self)) }
            default:
                preconditionFailure("FloatConversion: \(dtype.rawValue) is not a float type")
            }
        }
    }
}
