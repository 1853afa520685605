import Foundation

/// PyTorch's CPU random generator: `torch.Generator("cpu").manual_seed(seed)`.
///
/// `randn(shape)` equals `torch.randn(shape, generator: g)` value for value and `rand(shape)` equals
/// `torch.rand(shape, generator: g)`; successive calls continue the stream exactly as torch does, so a
/// sampler that draws noise every step reproduces diffusers' images for the same seed.
///
/// How torch draws (aten `CPUGeneratorImpl`, `DistributionsHelper.h`, `cpu/DistributionTemplates.h`):
/// - the engine is a 32-bit Mersenne Twister (mt19937) seeded with the low 32 bits of the seed;
/// - a float uniform is `(next() & 0xFFFFFF) / 2^24`; a double uniform takes two draws
///   `(hi << 32 | lo) & (2^53 - 1)` over `2^53`;
/// - tensors with fewer than 16 elements use scalar Box-Muller in double precision
///   (`u1`, `u2` double uniforms, `r = sqrt(-2 log1p(-u2))`, `theta = 2 pi u1`): it returns `r cos theta`
///   and keeps `r sin theta` in the generator for the next scalar draw (even one in a later call);
/// - tensors with 16 or more elements first fill every element with a float uniform, then transform
///   blocks of 16 (`u1 = 1 - data[j]`, `u2 = data[j + 8]`, `data[j] = r cos`, `data[j + 8] = r sin`,
///   j = 0..<8); when the count is not a multiple of 16 the last 16 elements are refilled with fresh
///   uniforms and transformed again.
///
/// The 16-block transform uses the float32 log and sincos approximations of x86-64 torch builds
/// (AVX2 and AVX-512 kernels: Cephes polynomials, with the compiler's fused multiply-adds), so values
/// match those builds bit for bit. Torch builds without AVX2 (e.g. aarch64) use libm there and differ
/// from these values by about one float ulp.
public final class TorchRandom: RandomSource {
    /// The seed given at creation.
    public let seed: UInt64
    private var engine: MersenneTwister
    /// The second Box-Muller value of the scalar path, as torch's `next_double_normal_sample`.
    private var cachedNormal: Double?

    /// Equivalent to `torch.Generator("cpu").manual_seed(seed)`. Seeds above 2^32 - 1 act as their
    /// low 32 bits, as in torch.
    public init(seed: UInt64) {
        self.seed = seed
        engine = MersenneTwister(seed: UInt32(truncatingIfNeeded: seed))
        cachedNormal = nil
    }

    /// `torch.randn(shape, generator: g)` (float32, contiguous).
    public func randn(_ shape: [Int]) -> Tensor {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        let out = Tensor(zeros: shape)
        let n = out.count
        let data = out.pointer
        if n < 16 {
            for i in 0 ..< n { data[i] = Float(nextScalarNormal()) }
            return out
        }
        for i in 0 ..< n { data[i] = nextUniformFloat() }
        var start = 0
        while start + 16 <= n {
            Self.boxMuller16(data + start)
            start += 16
        }
        if n % 16 != 0 {
            let tail = data + (n - 16)
            for i in 0 ..< 16 { tail[i] = nextUniformFloat() }
            Self.boxMuller16(tail)
        }
        return out
    }

    /// `torch.rand(shape, generator: g)`: float32 uniforms in [0, 1).
    public func rand(_ shape: [Int]) -> Tensor {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        let out = Tensor(zeros: shape)
        for i in 0 ..< out.count { out.pointer[i] = nextUniformFloat() }
        return out
    }

    /// The next raw 32-bit output of the engine (torch's `random()`).
    public func nextUInt32() -> UInt32 { engine.next() }

    /// Two engine outputs joined high word first (torch's `random64()`).
    public func nextUInt64() -> UInt64 {
        let high = UInt64(engine.next())
        let low = UInt64(engine.next())
        return high << 32 | low
    }

    // at::uniform_real_distribution<float>(0, 1): 24 random bits over 2^24.
    private func nextUniformFloat() -> Float {
        Float(engine.next() & 0xFF_FFFF) * (1.0 / 16_777_216.0)
    }

    // at::uniform_real_distribution<double>(0, 1): 53 random bits over 2^53.
    private func nextUniformDouble() -> Double {
        Double(nextUInt64() & ((1 << 53) - 1)) * (1.0 / 9_007_199_254_740_992.0)
    }

    // at::normal_distribution<double>(0, 1) with the generator's cached second value.
    private func nextScalarNormal() -> Double {
        if let cached = cachedNormal {
            cachedNormal = nil
            return cached
        }
        let u1 = nextUniformDouble()
        let u2 = nextUniformDouble()
        let r = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = r * sin(theta)
        return r * cos(theta)
    }

    // Box-Muller on 16 uniforms in place: z = sqrt(-2 ln(1 - u1)) * (cos, sin)(2 pi u2).
    private static func boxMuller16(_ data: UnsafeMutablePointer<Float>) {
        let twoPi = Float(2.0 * Double.pi)
        for j in 0 ..< 8 {
            let u1 = 1 - data[j]
            let u2 = data[j + 8]
            let radius = (-2 * CephesFloat.log(u1)).squareRoot()
            let (s, c) = CephesFloat.sinCos(twoPi * u2)
            data[j] = radius * c
            data[j + 8] = radius * s
        }
    }
}

/// The 32-bit Mersenne Twister (MT19937) with the reference `init_genrand` seeding, as torch's `at::mt19937`.
struct MersenneTwister {
    private static let n = 624
    private static let m = 397
    private var state: [UInt32]
    private var index: Int

    init(seed: UInt32) {
        state = [UInt32](repeating: 0, count: Self.n)
        state[0] = seed
        for i in 1 ..< Self.n {
            // s[i] = 1812433253 * (s[i-1] ^ (s[i-1] >> 30)) + i  (mod 2^32)
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
        index = Self.n
    }

    mutating func next() -> UInt32 {
        if index >= Self.n { twist() }
        var y = state[index]
        index += 1
        // Tempering.
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        for i in 0 ..< Self.n {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % Self.n] & 0x7FFF_FFFF)
            state[i] = state[(i + Self.m) % Self.n] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_B0DF : 0)
        }
        index = 0
    }
}

/// Float32 natural log and sin/cos with the Cephes polynomials (Pommier's `sse_mathfun` as vectorised in
/// torch's `avx_mathfun.h`), evaluated operation by operation the way torch's x86-64 build computes them,
/// including its fused multiply-adds. Valid for the arguments Box-Muller uses: log on (0, 1], sincos on [0, 2 pi).
enum CephesFloat {
    private static let sqrtHalf: Float = 0.707106781186547524
    private static let logP: [Float] = [
        7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
        -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1,
    ]
    private static let logQ1: Float = -2.12194440e-4
    private static let logQ2: Float = 0.693359375

    /// ln(x) for x > 0.
    static func log(_ value: Float) -> Float {
        // x = m * 2^e with m in [0.5, 1); if m < sqrt(1/2): m = 2m, e -= 1; then ln x = ln(1 + (m - 1)) + e ln 2.
        let clamped = max(value, Float(bitPattern: 0x0080_0000))
        let bits = clamped.bitPattern
        var e = Float(Int32(bitPattern: bits >> 23) - 127) + 1
        var x = Float(bitPattern: (bits & ~0x7F80_0000) | Float(0.5).bitPattern)
        let below = x < sqrtHalf
        let tmp: Float = below ? x : 0
        x = x - 1
        if below { e = e - 1 }
        x = x + tmp
        let z = x * x
        var y = logP[0]
        for p in logP.dropFirst() { y = p.addingProduct(y, x) }
        y = y * x
        y = (e * logQ1).addingProduct(y, z)
        y = y - z * 0.5
        x = x + y
        return x + e * logQ2
    }

    private static let fourOverPi: Float = 1.27323954473516
    private static let dp1: Float = -0.78515625
    private static let dp2: Float = -2.4187564849853515625e-4
    private static let dp3: Float = -3.77489497744594108e-8
    private static let sinP: [Float] = [-1.9515295891E-4, 8.3321608736E-3, -1.6666654611E-1]
    private static let cosP: [Float] = [2.443315711809948E-005, -1.388731625493765E-003, 4.166664568298827E-002]

    /// (sin x, cos x).
    static func sinCos(_ value: Float) -> (sin: Float, cos: Float) {
        // Reduce |x| by j * pi/4 (j even, extended-precision pi/4 in three parts), evaluate the sin and cos
        // polynomials on the remainder, pick and sign them by the octant j.
        var x = abs(value)
        var j = Int32(x * fourOverPi)
        j = (j + 1) & ~1
        let y = Float(j)
        let sinSwap = (j & 4) != 0
        let cosSign = (~(j - 2) & 4) != 0
        let firstPolynomial = (j & 2) == 0
        x = x.addingProduct(y, dp1)
        x = x.addingProduct(y, dp2)
        x = x.addingProduct(y, dp3)
        let z = x * x
        var c = cosP[0]
        c = cosP[1].addingProduct(c, z)
        c = cosP[2].addingProduct(c, z)
        c = c * z
        c = (-(z * 0.5)).addingProduct(c, z)
        c = c + 1
        var s = sinP[0]
        s = sinP[1].addingProduct(s, z)
        s = sinP[2].addingProduct(s, z)
        s = s * z
        s = x.addingProduct(s, x)
        var sinValue = firstPolynomial ? s : c
        var cosValue = firstPolynomial ? c : s
        if (value.sign == .minus) != sinSwap { sinValue = -sinValue }
        if cosSign { cosValue = -cosValue }
        return (sinValue, cosValue)
    }
}
