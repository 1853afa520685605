import Foundation

/// How latents become pixels, for previews and for the diagnostic "what did the UNet make" view.
public enum LatentDecoderKind: String, CaseIterable, Sendable {
    /// The full VAE decoder: exact, slow.
    case vae
    /// `ApproximateDecoder`: a per-pixel MLP, no spatial mixing.
    case approx
    /// `LinearLatentDecoder`: a 4x3 matrix per pixel.
    case linear
}

/// A cheap decoder that maps each latent pixel to one RGB value independently.
public protocol PixelwiseLatentDecoder {
    /// `[B, 4, h, w]` latents as the sampler sees them (already multiplied by the VAE scaling
    /// factor) to `[B, 3, h, w]` RGB, nominally in [-1, 1] (strong guidance can exceed it).
    func rgb(fromLatents latents: Tensor) -> Tensor
}

extension PixelwiseLatentDecoder {
    /// Batch element `index` of `[B, 4, h, w]` latents as an 8-bit image of `h * upscale` x
    /// `w * upscale` pixels: RGB mapped to bytes as VAE output is (`ImageConversion.byte(fromSigned:)`,
    /// i.e. clamped to [-1, 1]), each latent pixel repeated into an `upscale` x `upscale` block
    /// (nearest neighbour; 8 matches the VAE's size).
    public func image(fromLatents latents: Tensor, index: Int, upscale: Int = 8) -> RGBImage {
        precondition(latents.rank == 4 && index >= 0 && index < latents.shape[0],
                     "latents must be [B, 4, h, w] with batch index in range, got \(latents.shape) index \(index)")
        precondition(upscale >= 1, "upscale must be at least 1")
        let rgb = self.rgb(fromLatents: latents.slice(batch: index, count: 1))  // [1, 3, h, w]
        let h = rgb.shape[2], w = rgb.shape[3], plane = h * w
        let src = rgb.pointer
        var small = [UInt8](repeating: 0, count: plane * 3)
        for c in 0 ..< 3 {
            for p in 0 ..< plane { small[p * 3 + c] = ImageConversion.byte(fromSigned: src[c * plane + p]) }
        }
        let width = w * upscale, height = h * upscale
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0 ..< height {
            for x in 0 ..< width {
                let from = ((y / upscale) * w + x / upscale) * 3, to = (y * width + x) * 3
                pixels[to] = small[from]
                pixels[to + 1] = small[from + 1]
                pixels[to + 2] = small[from + 2]
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}

/// Alex Birch's approximate VAE decoder: a per-pixel MLP from the 4 latent channels to RGB,
/// `in_proj` (4 -> D), SiLU, then each `hidden_layers.{2i}` (D -> D) followed by SiLU, then
/// `out_proj` (D -> 3), with no clamp inside (the output is nominally in [-1, 1]). The bundled
/// SD1.5 weights (D = 12, one hidden layer) are BSD-3-Clause, copyright 2023 Alex Birch
/// (`Resources/approx_decoder_sd15.LICENSE`).
public struct ApproximateDecoder: PixelwiseLatentDecoder {
    struct Layer {
        let inputs: Int, outputs: Int
        let weight: [Float]  // [outputs, inputs]
        let bias: [Float]  // [outputs]
    }

    let layers: [Layer]  // SiLU follows every layer but the last

    /// Builds the decoder from its parameters (names as in Birch's PyTorch module):
    /// `in_proj.weight [D, 4]`, `in_proj.bias [D]`, `hidden_layers.{0,2,...}.weight [D, D]` and `.bias [D]`,
    /// `out_proj.weight [3, D]`, `out_proj.bias [3]`. Every tensor must be used.
    /// - Throws: `AnySizeError` naming `source` and the tensor that is missing, misshapen or unexpected.
    public init(tensors: [String: Tensor], source: String) throws {
        var used: Set<String> = []
        func layer(_ prefix: String, inputs: Int?, outputs: Int?) throws -> Layer {
            guard let w = tensors[prefix + ".weight"], let b = tensors[prefix + ".bias"] else {
                throw AnySizeError(.missingTensor,
                    "\(source): approximate-decoder tensor '\(prefix).weight' or '\(prefix).bias' is missing; this is not an approximate-decoder file")
            }
            let outs = w.rank == 2 ? w.shape[0] : -1, ins = w.rank == 2 ? w.shape[1] : -1
            guard w.rank == 2, inputs.map({ $0 == ins }) ?? true, outputs.map({ $0 == outs }) ?? true, b.shape == [outs] else {
                throw AnySizeError(.shapeMismatch,
                    "\(source): approximate-decoder '\(prefix)' has weight \(w.shape) and bias \(b.shape), expected [\(outputs.map(String.init) ?? "D"), \(inputs.map(String.init) ?? "D")] and [\(outputs.map(String.init) ?? "D")]")
            }
            used.formUnion([prefix + ".weight", prefix + ".bias"])
            return Layer(inputs: ins, outputs: outs, weight: w.scalars, bias: b.scalars)
        }
        var layers = [try layer("in_proj", inputs: 4, outputs: nil)]
        let inner = layers[0].outputs
        var index = 0
        while tensors["hidden_layers.\(index).weight"] != nil {
            layers.append(try layer("hidden_layers.\(index)", inputs: inner, outputs: inner))
            index += 2  // odd indices are the SiLU modules, which have no parameters
        }
        layers.append(try layer("out_proj", inputs: inner, outputs: 3))
        let unexpected = tensors.keys.filter { !used.contains($0) }.sorted()
        guard unexpected.isEmpty else {
            throw AnySizeError(.unsupportedFormat,
                "\(source): unexpected approximate-decoder tensors \(unexpected); expected only in_proj, hidden_layers.N and out_proj")
        }
        self.layers = layers
    }

    /// Loads parameters from a JSON object of nested number arrays keyed by parameter name
    /// (the format of the bundled `approx_decoder_sd15.json`).
    public init(jsonFile path: String) throws {
        try self.init(tensors: JSONTensors.load(path: path), source: path)
    }

    /// Loads parameters from a `.safetensors` file holding the tensors named above (F32, F16, BF16 or F64).
    public init(safetensorsFile path: String) throws {
        let file = try SafeTensorsFile(path: path)
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        try self.init(tensors: tensors, source: path)
    }

    /// Loads a user-supplied decoder: `.json` files as `init(jsonFile:)`, anything else as safetensors.
    public init(file path: String) throws {
        if path.lowercased().hasSuffix(".json") {
            try self.init(jsonFile: path)
        } else {
            try self.init(safetensorsFile: path)
        }
    }

    /// The bundled SD1.5 weights (BSD-3-Clause, copyright 2023 Alex Birch).
    public static func bundledSD15() throws -> ApproximateDecoder {
        guard let url = Bundle.module.url(forResource: "approx_decoder_sd15", withExtension: "json", subdirectory: "Resources") else {
            throw AnySizeError(.missingComponent,
                "the bundled approximate-decoder weights (Resources/approx_decoder_sd15.json) are missing from the AnySize resource bundle; reinstall AnySize")
        }
        return try ApproximateDecoder(jsonFile: url.path)
    }

    public func rgb(fromLatents latents: Tensor) -> Tensor {
        precondition(latents.rank == 4 && latents.shape[1] == 4, "latents must be [B, 4, h, w], got \(latents.shape)")
        let batch = latents.shape[0], plane = latents.shape[2] * latents.shape[3]
        let out = Tensor(zeros: [batch, 3, latents.shape[2], latents.shape[3]])  // [B, 3, h, w]
        let src = latents.pointer, dst = out.pointer
        let width = layers.map(\.outputs).max() ?? 3
        var a = [Float](repeating: 0, count: max(width, 4)), next = a
        for b in 0 ..< batch {
            for p in 0 ..< plane {
                for c in 0 ..< 4 { a[c] = src[(b * 4 + c) * plane + p] }
                for (l, layer) in layers.enumerated() {
                    // next = W a + bias, then SiLU(v) = v * sigmoid(v) except after the last layer
                    for o in 0 ..< layer.outputs {
                        var s = layer.bias[o]
                        for i in 0 ..< layer.inputs { s += layer.weight[o * layer.inputs + i] * a[i] }
                        next[o] = l == layers.count - 1 ? s : s / (1 + exp(-s))
                    }
                    swap(&a, &next)
                }
                for c in 0 ..< 3 { dst[(b * 3 + c) * plane + p] = a[c] }
            }
        }
        return out
    }
}

/// A 4x3 latent-to-RGB matrix plus bias, applied per latent pixel: `rgb[c] = sum_l latent[l] * factors[l][c] + bias[c]`.
public struct LinearLatentDecoder: PixelwiseLatentDecoder {
    /// `factors[l][c]`: weight of latent channel `l` in colour `c` (4 rows of R, G, B).
    public let factors: [[Float]]
    /// Added to R, G, B.
    public let bias: [Float]

    public init(factors: [[Float]], bias: [Float] = [0, 0, 0]) {
        precondition(factors.count == 4 && factors.allSatisfy { $0.count == 3 } && bias.count == 3,
                     "a linear latent decoder needs 4x3 factors and 3 biases")
        self.factors = factors
        self.bias = bias
    }

    /// SD1.x/2.x factors as ComfyUI uses them for previews (`comfy/latent_formats.py`, class `SD15`,
    /// `latent_rgb_factors`, no bias), acting on the sampler's latents (already multiplied by 0.18215).
    /// A1111 uses a similar older fit (0.298, 0.207, 0.208, ...), first posted by keturn in
    /// "Decoding latents to RGB without upscaling" (Hugging Face forums, 2022).
    public static let sd15 = LinearLatentDecoder(factors: [
        //   R        G        B
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ])

    public func rgb(fromLatents latents: Tensor) -> Tensor {
        precondition(latents.rank == 4 && latents.shape[1] == 4, "latents must be [B, 4, h, w], got \(latents.shape)")
        let batch = latents.shape[0], plane = latents.shape[2] * latents.shape[3]
        let out = Tensor(zeros: [batch, 3, latents.shape[2], latents.shape[3]])  // [B, 3, h, w]
        let src = latents.pointer, dst = out.pointer
        for b in 0 ..< batch {
            for c in 0 ..< 3 {
                let f0 = factors[0][c], f1 = factors[1][c], f2 = factors[2][c], f3 = factors[3][c], bc = bias[c]
                let l = src + b * 4 * plane, o = dst + (b * 3 + c) * plane
                for p in 0 ..< plane {
                    o[p] = bc + l[p] * f0 + l[plane + p] * f1 + l[2 * plane + p] * f2 + l[3 * plane + p] * f3
                }
            }
        }
        return out
    }
}

/// Tensors stored as a JSON object of nested number arrays (shape inferred from the nesting).
enum JSONTensors {
    static func load(path: String) throws -> [String: Tensor] {
        let bytes = try FileIO.readBytes(path: path)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            throw AnySizeError(.corruptFile, "'\(path)' is not valid JSON: \(error.localizedDescription)")
        }
        guard let entries = object as? [String: Any] else {
            throw AnySizeError(.unsupportedFormat, "'\(path)' must hold a JSON object of tensors keyed by parameter name")
        }
        var tensors: [String: Tensor] = [:]
        for (name, value) in entries {
            var values: [Float] = []
            guard let shape = flatten(value, into: &values) else {
                throw AnySizeError(.unsupportedFormat, "'\(path)': tensor '\(name)' is not a rectangular array of numbers")
            }
            tensors[name] = Tensor(shape: shape, values: values)
        }
        return tensors
    }

    /// Appends the numbers of a nested array to `values`; returns its shape, or nil if ragged or not numeric.
    private static func flatten(_ value: Any, into values: inout [Float]) -> [Int]? {
        if let number = value as? NSNumber {
            values.append(number.floatValue)
            return []
        }
        guard let array = value as? [Any] else { return nil }
        var inner: [Int]?
        for element in array {
            guard let shape = flatten(element, into: &values), inner == nil || inner == shape else { return nil }
            inner = shape
        }
        return [array.count] + (inner ?? [])
    }
}
