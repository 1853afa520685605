/// Whether and how the VAE splits an image into tiles (`--vae-tile`).
///
/// A tiled decode runs the full decoder on overlapping latent tiles and blends them with linear ramps
/// (a weighted accumulation, see `AutoencoderKL.decode(_:tiling:)`), so its peak memory follows the tile
/// size instead of the image size. The VAE's mid-block attention and GroupNorm statistics are global, so a
/// tiled image differs a little from an untiled one; a single tile covering the image is exactly untiled.
public enum VAETiling: Sendable, Equatable {
    /// Never tile.
    case off
    /// Tile with `automaticTileSize` tiles when the image is larger than `automaticThresholdPixels`.
    case automatic
    /// Tiles of this many pixels per side (a multiple of 8; images no larger than one tile run untiled).
    case tiles(Int)

    /// 768 x 768: the untiled SD decoder needs about 2.5 KB per pixel (about 1.5 GB here, 2.7 GB at 1024 x 1024,
    /// 10.7 GB at 2048 x 2048); SD2-768's own size stays untiled.
    public static let automaticThresholdPixels = 768 * 768
    /// 512 pixels (64 latents): the VAE's trained size; a tile then needs about 0.7 GB.
    public static let automaticTileSize = 512
    /// The smallest tile accepted (pixels).
    public static let minimumTileSize = 64

    /// `--vae-tile N`: nil = automatic, 0 = off, N = tiles of N pixels.
    public init(flag: Int?) throws {
        guard let size = flag else { self = .automatic; return }
        if size == 0 { self = .off; return }
        guard size >= Self.minimumTileSize, size % 8 == 0 else {
            throw AnySizeError(.invalidArgument,
                "--vae-tile \(size): use 0 (off) or a multiple of 8 of at least \(Self.minimumTileSize) pixels, e.g. 512")
        }
        self = .tiles(size)
    }

    /// Tile side in pixels for a `width` x `height` image, or nil to decode untiled.
    public func tileSize(width: Int, height: Int) -> Int? {
        switch self {
        case .off: return nil
        case .automatic: return width * height > Self.automaticThresholdPixels ? Self.automaticTileSize : nil
        case .tiles(let size): return size
        }
    }

    /// Description for messages and `--verbose`.
    public var summary: String {
        switch self {
        case .off: return "off"
        case .automatic: return "auto (\(Self.automaticTileSize) px tiles above \(Self.automaticThresholdPixels) pixels)"
        case .tiles(let size): return "\(size) px tiles"
        }
    }
}

/// Placement of overlapping tiles along one axis, in latent units.
public struct TileLayout: Sendable, Equatable {
    /// First latent row (or column) of each tile, ascending; the last tile ends at the axis end.
    public let starts: [Int]
    /// Tile length (the axis length when it is shorter than a tile).
    public let tile: Int
    public let length: Int

    /// Tiles of `tile` latents with at least `overlap` latents shared by neighbours, spread evenly over
    /// `length`: n = ceil((length - overlap) / (tile - overlap)) tiles, start_i = round(i (length - tile) / (n - 1)).
    public init(length: Int, tile: Int, overlap: Int) {
        precondition(length >= 1 && tile >= 1 && overlap >= 0 && overlap < tile, "tiles \(tile)/\(overlap) for \(length)")
        self.length = length
        guard length > tile else {
            starts = [0]
            self.tile = length
            return
        }
        let stride = tile - overlap
        let n = (length - overlap + stride - 1) / stride
        starts = (0 ..< n).map { i in (2 * i * (length - tile) + (n - 1)) / (2 * (n - 1)) }
        self.tile = tile
    }

    /// Blend weights of tile `index` at output scale `scale` (8 for decoded pixels, 1 for latents): 1 inside,
    /// ramping linearly to 0 across each overlap with a neighbour, (p + 1/2) / R for the p-th of R overlap
    /// samples. Neighbouring ramps over the same overlap sum to 1; the image border has no ramp.
    public func weights(tile index: Int, scale: Int) -> [Float] {
        let size = tile * scale
        let start = starts[index]
        let left = index > 0 ? (starts[index - 1] + tile - start) * scale : 0
        let right = index + 1 < starts.count ? (start + tile - starts[index + 1]) * scale : 0
        return (0 ..< size).map { p in
            var w: Float = 1
            if left > 0 { w = min(w, (Float(p) + 0.5) / Float(left)) }
            if right > 0 { w = min(w, (Float(size - p) - 0.5) / Float(right)) }
            return w
        }
    }
}

extension AutoencoderKL {
    /// Decodes z [B, 4, h, w] (already divided by the scaling factor) to [B, 3, 8h, 8w], tiled as `tiling` says.
    ///
    /// Tiles of T = tile/8 latents overlap by T/4 latents; each runs through the whole decoder (conv_in, mid
    /// block with its attention, up blocks), and the decoded tiles are accumulated with separable linear-ramp
    /// weights w(y) w(x) (`TileLayout.weights`), then divided by the summed weights. This is a weighted
    /// accumulation rather than diffusers' `tiled_decode` (which blends each tile into its upper and left
    /// neighbours and crops); both fade linearly across the overlap. Batch elements decode one at a time.
    public func decode(_ z: Tensor, tiling: VAETiling) -> Tensor {
        let f = downsamplingFactor
        guard let size = tiling.tileSize(width: z.dim(3) * f, height: z.dim(2) * f) else { return decodeEach(z) }
        let tile = max(1, size / f)
        let rows = TileLayout(length: z.dim(2), tile: tile, overlap: tile / 4)
        let columns = TileLayout(length: z.dim(3), tile: tile, overlap: tile / 4)
        if rows.starts.count == 1 && columns.starts.count == 1 { return decodeEach(z) }
        return blendTiles(z, rows: rows, columns: columns, scale: f, outChannels: config.outChannels) { decode($0) }
    }

    /// Encodes an image [B, 3, H, W] in [-1, 1] (H, W multiples of 8 for tiling) to (mean, logvar) [B, 4, H/8, W/8].
    ///
    /// Tiles of `tile` pixels overlapping by a quarter are encoded separately; their moments (mean and unclamped
    /// logvar) are blended as in `decode(_:tiling:)` at latent resolution, then logvar is clamped to [-30, 20].
    public func encode(_ x: Tensor, tiling: VAETiling) -> (mean: Tensor, logvar: Tensor) {
        let f = downsamplingFactor
        let height = x.dim(2), width = x.dim(3)
        guard let size = tiling.tileSize(width: width, height: height), height % f == 0, width % f == 0 else {
            return encodeEach(x)
        }
        let tile = max(1, size / f)
        let rows = TileLayout(length: height / f, tile: tile, overlap: tile / 4)
        let columns = TileLayout(length: width / f, tile: tile, overlap: tile / 4)
        if rows.starts.count == 1 && columns.starts.count == 1 { return encodeEach(x) }
        let moments = blendTiles(x, rows: rows, columns: columns, scale: 1, inputScale: f,
                                 outChannels: 2 * config.latentChannels) { encodeMoments($0) }
        return Self.splitMoments(moments)
    }

    /// Untiled decode, one batch element at a time (the decoder's peak memory does not grow with the batch).
    func decodeEach(_ z: Tensor) -> Tensor {
        let batch = z.dim(0)
        guard batch > 1 else { return decode(z) }
        let parts = (0 ..< batch).map { decode(z.slice(batch: $0, count: 1)) }
        return Elementwise.concatBatch(parts)
    }

    /// Untiled encode, one batch element at a time.
    func encodeEach(_ x: Tensor) -> (mean: Tensor, logvar: Tensor) {
        let batch = x.dim(0)
        guard batch > 1 else { return encode(x) }
        let parts = (0 ..< batch).map { encode(x.slice(batch: $0, count: 1)) }
        return (Elementwise.concatBatch(parts.map(\.mean)), Elementwise.concatBatch(parts.map(\.logvar)))
    }

    /// Runs `body` on every tile of every batch element of `input` and accumulates the weighted outputs.
    /// Tile positions are in units of the output grid / `scale`; the input is cut at `inputScale` times that.
    private func blendTiles(_ input: Tensor, rows: TileLayout, columns: TileLayout, scale: Int, inputScale: Int = 1,
                            outChannels: Int, body: (Tensor) -> Tensor) -> Tensor {
        let batch = input.dim(0)
        let outHeight = rows.length * scale, outWidth = columns.length * scale
        let out = Tensor(zeros: [batch, outChannels, outHeight, outWidth])
        let weightSum = Tensor(zeros: [outHeight, outWidth])
        let rowWeights = rows.starts.indices.map { rows.weights(tile: $0, scale: scale) }
        let columnWeights = columns.starts.indices.map { columns.weights(tile: $0, scale: scale) }
        let tileHeight = rows.tile * scale, tileWidth = columns.tile * scale
        for b in 0 ..< batch {
            for (i, y0) in rows.starts.enumerated() {
                for (j, x0) in columns.starts.enumerated() {
                    let crop = Self.crop(input, batch: b, y: y0 * inputScale, x: x0 * inputScale,
                                         height: rows.tile * inputScale, width: columns.tile * inputScale)
                    let decoded = body(crop)                                      // [1, outChannels, tileH, tileW]
                    precondition(decoded.shape == [1, outChannels, tileHeight, tileWidth],
                                 "tile output \(decoded.shape), expected [1, \(outChannels), \(tileHeight), \(tileWidth)]")
                    let wy = rowWeights[i], wx = columnWeights[j]
                    let oy = y0 * scale, ox = x0 * scale
                    for c in 0 ..< outChannels {
                        let src = decoded.pointer + c * tileHeight * tileWidth
                        let dst = out.pointer + ((b * outChannels + c) * outHeight + oy) * outWidth + ox
                        for y in 0 ..< tileHeight {
                            // out[b, c, oy + y, ox + x] += w(y) w(x) tile[c, y, x]
                            let s = src + y * tileWidth, d = dst + y * outWidth
                            for x in 0 ..< tileWidth { d[x] += wy[y] * wx[x] * s[x] }
                        }
                    }
                    if b == 0 {
                        for y in 0 ..< tileHeight {
                            let d = weightSum.pointer + (oy + y) * outWidth + ox
                            for x in 0 ..< tileWidth { d[x] += wy[y] * wx[x] }
                        }
                    }
                }
            }
        }
        let plane = outHeight * outWidth
        for bc in 0 ..< batch * outChannels {
            let d = out.pointer + bc * plane
            for p in 0 ..< plane { d[p] /= weightSum.pointer[p] }
        }
        return out
    }

    /// input[b, :, y ..< y + height, x ..< x + width] as [1, C, height, width].
    private static func crop(_ input: Tensor, batch b: Int, y: Int, x: Int, height: Int, width: Int) -> Tensor {
        let channels = input.dim(1), inHeight = input.dim(2), inWidth = input.dim(3)
        precondition(y >= 0 && x >= 0 && y + height <= inHeight && x + width <= inWidth,
                     "tile \(height)x\(width) at (\(y), \(x)) outside \(input.shape)")
        let out = Tensor(zeros: [1, channels, height, width])
        for c in 0 ..< channels {
            let src = input.pointer + ((b * channels + c) * inHeight + y) * inWidth + x
            let dst = out.pointer + c * height * width
            for row in 0 ..< height { (dst + row * width).update(from: src + row * inWidth, count: width) }
        }
        return out
    }
}
