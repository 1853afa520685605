import CPNG

/// An 8-bit RGB image: `pixels` holds `width * height * 3` bytes, row-major, R G B per pixel.
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// Row-major RGB bytes; keep the count at `width * height * 3`.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "image size \(width)x\(height) must be positive")
        precondition(pixels.count == width * height * 3,
                     "\(width)x\(height) RGB image needs \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A black image.
    public init(width: Int, height: Int) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height * 3))
    }

    /// Channel `c` (0 red, 1 green, 2 blue) of the pixel in column `x`, row `y`.
    public subscript(x: Int, y: Int, c: Int) -> UInt8 {
        get { pixels[(y * width + x) * 3 + c] }
        set { pixels[(y * width + x) * 3 + c] = newValue }
    }
}

/// Writes 8-bit RGB PNG files through libpng's simplified API, with text chunks.
///
/// libpng reports errors by `longjmp`, which must never cross Swift frames; the simplified
/// (`png_image`) API catches them itself and reports through the struct, so it is the only part
/// of libpng used here. Text chunks are spliced into the encoded stream by `PNGText`.
public enum PNGWriter {
    /// Writes `image` to `path` atomically (temporary file in the same folder, then rename).
    ///
    /// Each text pair becomes a `tEXt` chunk when the value is Latin-1 encodable and an uncompressed
    /// UTF-8 `iTXt` chunk otherwise, as PIL's `PngInfo.add_text` does; A1111 keeps its generation
    /// settings under the key `parameters`. The chunks follow IHDR, where PIL puts them.
    /// - Throws: `AnySizeError` naming `path`, or the key, on bad keys, encoder failures and I/O errors.
    public static func write(_ image: RGBImage, to path: String, text: [(key: String, value: String)] = []) throws {
        let png = try encode(image, text: text)
        try FileIO.writeAtomically(png, to: path)
    }

    /// The PNG file bytes for `image` with `text` chunks.
    public static func encode(_ image: RGBImage, text: [(key: String, value: String)] = []) throws -> [UInt8] {
        let chunks = try text.map { try PNGText.chunk(key: $0.key, value: $0.value) }
        var header = png_image()
        header.version = UInt32(PNG_IMAGE_VERSION)
        header.width = UInt32(image.width)
        header.height = UInt32(image.height)
        header.format = UInt32(PNG_FORMAT_RGB)
        // Deflate never grows data by more than a few bytes per 16 KB block; libpng adds small chunks.
        let rawBytes = (image.width * 3 + 1) * image.height
        var capacity = rawBytes + rawBytes / 64 + 4096
        for _ in 0 ..< 2 {
            var out = [UInt8](repeating: 0, count: capacity)
            var size = png_alloc_size_t(capacity)
            var attempt = header
            let ok = out.withUnsafeMutableBytes { dst in
                image.pixels.withUnsafeBytes { src in
                    png_image_write_to_memory(&attempt, dst.baseAddress, &size, 0, src.baseAddress, 0, nil)
                }
            }
            png_image_free(&attempt)
            if ok != 0 {
                return PNGText.insert(chunks, into: Array(out[0 ..< Int(size)]))
            }
            if Int(size) > capacity {
                capacity = Int(size)  // libpng reports the size it needs when the buffer is too small
                continue
            }
            throw AnySizeError(.io, "PNG encoding of a \(image.width)x\(image.height) image failed: \(message(of: attempt))")
        }
        throw AnySizeError(.io, "PNG encoding of a \(image.width)x\(image.height) image needs more than \(capacity) bytes")
    }

    static func message(of image: png_image) -> String {
        withUnsafeBytes(of: image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// Reads PNG files of any colour type and bit depth into 8-bit RGB (libpng simplified API).
///
/// Conversions: gray is replicated to R, G and B; palettes are expanded; an alpha channel
/// (including palette or colour-key `tRNS` transparency) is dropped, keeping the stored colour
/// values, as PIL's `convert("RGB")` does for diffusers' init images (no compositing);
/// 16-bit samples are treated as sRGB-encoded and scaled to 8 bits with rounding (PIL truncates to
/// the high byte, so the two may differ by one level); a `gAMA` chunk far from sRGB is honoured by
/// libpng (PIL ignores it); interlaced files are de-interlaced.
public enum PNGReader {
    /// Reads `path` into an 8-bit RGB image.
    /// - Throws: `AnySizeError` naming `path`: missing or unreadable file, not a PNG, damaged data.
    public static func read(path: String) throws -> RGBImage {
        let bytes = try FileIO.readBytes(path: path)
        return try decode(bytes, source: path)
    }

    /// Decodes PNG file bytes; `source` names them in errors.
    public static func decode(_ bytes: [UInt8], source: String) throws -> RGBImage {
        guard bytes.count >= 8, Array(bytes[0 ..< 8]) == PNGText.signature else {
            throw AnySizeError(.unsupportedFormat, "'\(source)' is not a PNG file; AnySize reads PNG images only")
        }
        return try bytes.withUnsafeBytes { raw -> RGBImage in
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            defer { png_image_free(&image) }
            guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
                throw AnySizeError(.corruptFile, "cannot read PNG '\(source)': \(PNGWriter.message(of: image)); the file is damaged or not a PNG")
            }
            let width = Int(image.width), height = Int(image.height)
            guard width > 0, height > 0, width <= 1 << 16, height <= 1 << 16 else {
                throw AnySizeError(.unsupportedFormat, "PNG '\(source)' is \(width)x\(height); AnySize reads images up to 65536 pixels a side")
            }
            let hasAlpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
            let channels = hasAlpha ? 4 : 3
            image.format = UInt32(PNG_FORMAT_RGB) | (hasAlpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
            image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)  // must follow begin_read, which resets flags
            var buffer = [UInt8](repeating: 0, count: width * height * channels)
            let ok = buffer.withUnsafeMutableBytes { dst in
                png_image_finish_read(&image, nil, dst.baseAddress, Int32(width * channels), nil)
            }
            guard ok != 0 else {
                throw AnySizeError(.corruptFile, "cannot decode PNG '\(source)': \(PNGWriter.message(of: image)); the file is damaged")
            }
            guard hasAlpha else { return RGBImage(width: width, height: height, pixels: buffer) }
            var rgb = [UInt8](repeating: 0, count: width * height * 3)
            for p in 0 ..< width * height {
                rgb[p * 3] = buffer[p * 4]
                rgb[p * 3 + 1] = buffer[p * 4 + 1]
                rgb[p * 3 + 2] = buffer[p * 4 + 2]
            }
            return RGBImage(width: width, height: height, pixels: rgb)
        }
    }

    /// The `tEXt` and uncompressed `iTXt` key/value pairs of `path`, in file order.
    /// Compressed text (`zTXt`, compressed `iTXt`) is skipped: AnySize never writes it.
    /// - Throws: `AnySizeError` naming `path` when it is unreadable, not a PNG, or damaged.
    public static func textChunks(path: String) throws -> [(key: String, value: String)] {
        let bytes = try FileIO.readBytes(path: path)
        return try PNGText.chunks(of: bytes, source: path).compactMap { try PNGText.decode($0, source: path) }
    }

    /// Every chunk of `path` (type and data), e.g. to check which text chunk type was written.
    public static func chunks(path: String) throws -> [PNGChunk] {
        try PNGText.chunks(of: FileIO.readBytes(path: path), source: path)
    }
}
