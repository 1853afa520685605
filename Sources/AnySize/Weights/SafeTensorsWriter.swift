import Foundation

/// Writes float32 tensors as a `.safetensors` file (readable by `safetensors.torch.load_file`).
///
/// The file appears atomically (`FileIO.write(to:_:)`): data goes to a temporary file in the destination folder,
/// which is flushed and renamed over `path` only when complete; on any failure the temporary file is removed
/// and an existing file at `path` is left untouched.
public enum SafeTensorsWriter {
    /// Writes `tensors` (in the given order) with optional `__metadata__` strings.
    public static func write(_ tensors: [(String, Tensor)], to path: String, metadata: [String: String] = [:]) throws {
        var seen = Set<String>()
        for (name, _) in tensors {
            guard !name.isEmpty, name != "__metadata__" else {
                throw AnySizeError(.invalidArgument, "\(path): '\(name)' cannot be a tensor name in a safetensors file")
            }
            guard seen.insert(name).inserted else {
                throw AnySizeError(.invalidArgument, "\(path): tensor name '\(name)' appears twice")
            }
        }
        let header = try headerBytes(tensors, metadata: metadata, path: path)

        try FileIO.write(to: path) { sink in
            try withUnsafeBytes(of: UInt64(header.count).littleEndian) { try sink($0) }
            try header.withUnsafeBytes { try sink($0) }
            for (_, tensor) in tensors {
                // Float32 in memory is little-endian on every supported platform.
                try sink(UnsafeRawBufferPointer(start: tensor.pointer, count: tensor.count * 4))
            }
        }
    }

    /// The JSON header, space-padded to a multiple of 8 bytes so the data section is aligned.
    private static func headerBytes(_ tensors: [(String, Tensor)], metadata: [String: String], path: String) throws -> Data {
        var fields: [String: HeaderField] = [:]
        var offset = 0
        for (name, tensor) in tensors {
            let bytes = tensor.count * 4
            fields[name] = .tensor(shape: tensor.shape, offsets: [offset, offset + bytes])
            offset += bytes
        }
        if !metadata.isEmpty { fields["__metadata__"] = .metadata(metadata) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data: Data
        do {
            data = try encoder.encode(fields)
        } catch {
            throw AnySizeError(.invalidArgument, "\(path): cannot encode the safetensors header (\(oneLineDescription(error)))")
        }
        let padding = (8 - data.count % 8) % 8
        data.append(contentsOf: [UInt8](repeating: 0x20, count: padding))
        return data
    }

    private enum HeaderField: Encodable {
        case tensor(shape: [Int], offsets: [Int])
        case metadata([String: String])

        enum CodingKeys: String, CodingKey { case dtype, shape, dataOffsets = "data_offsets" }

        func encode(to encoder: Encoder) throws {
            switch self {
            case .tensor(let shape, let offsets):
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode("F32", forKey: .dtype)
                try container.encode(shape, forKey: .shape)
                try container.encode(offsets, forKey: .dataOffsets)
            case .metadata(let values):
                var container = encoder.singleValueContainer()
                try container.encode(values)
            }
        }
    }
}
