import AnySizeKernels
import CAnySizeBF16
import Foundation
import XCTest

/// The bfloat16 attention's online-softmax step (`anysize_bf16_softmax_rows`) against float64, over several key
/// blocks so that the running maximum grows and the state is rescaled, with masked keys, a row whose first block is
/// all masked, a row with no attendable key at all, and block widths that are not multiples of 16.
///
/// Bounds: p_j = e^{l_j - m'} is computed to about 2e-7 relative and rounded to bfloat16 to nearest, so
/// |P - e^{l - m'}| <= (2^-8 + 1e-6) e^{l - m'} (+1e-30 for values that underflow to 0); truncation instead of
/// rounding breaks this for about half the values. The running sums are float32 sums of p (relative 1e-5 here).
final class BFloat16SoftmaxTests: XCTestCase {
    struct State {
        var max: [Float], sum: [Float], entropy: [Float], acc: [Float], p: [UInt16]
    }

    static let rows = 6, accCols = 21, ldacc = 24, ldp = 52
    static let blocks = [37, 16, 50]

    /// Row r's logits of block b (ldl = 56): random in [-8, 8] + 3 b (so the max grows), with masked keys; row 2
    /// is all masked in block 0, row 5 in every block; one logit sits 100 below the rest (its e^x underflows).
    static func logits(block b: Int, rng: inout TestRandom) -> [Float] {
        var l = [Float](repeating: .nan, count: rows * 56)  // NaN past each row's width: must never be read
        for r in 0 ..< rows {
            for j in 0 ..< blocks[b] {
                var x = rng.uniform(-8, 8) + 3 * Float(b)
                if (r + j) % 7 == 3 || r == 5 || (r == 2 && b == 0) { x = -.infinity }
                if r == 1 && j == 4 { x = -100 }
                l[r * 56 + j] = x
            }
        }
        return l
    }

    func run(_ step: (UnsafePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                      UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>, Int, Int, UnsafeMutablePointer<UInt16>, Int) -> Void,
             entropy: Bool) -> (states: [State], logits: [[Float]]) {
        var rng = TestRandom(seed: 41)
        let r = Self.rows
        var state = State(max: .init(repeating: -.infinity, count: r), sum: .init(repeating: 0, count: r),
                          entropy: .init(repeating: 0, count: r), acc: .init(repeating: 1, count: r * Self.ldacc),
                          p: .init(repeating: 0xFFFF, count: r * Self.ldp))
        var states: [State] = [], all: [[Float]] = []
        for b in 0 ..< Self.blocks.count {
            let l = Self.logits(block: b, rng: &rng)
            state.p = .init(repeating: 0xFFFF, count: r * Self.ldp)
            state.entropy.withUnsafeMutableBufferPointer { t in
                step(l, 56, r, Self.blocks[b], &state.max, &state.sum, entropy ? t.baseAddress : nil, &state.acc,
                     Self.ldacc, Self.accCols, &state.p, Self.ldp)
            }
            states.append(state)
            all.append(l)
        }
        return (states, all)
    }

    func testAgainstFloat64() {
        let (states, blocks) = run(anysize_bf16_softmax_rows, entropy: true)
        let ldl = 56
        for r in 0 ..< Self.rows {
            var globalMax = -Double.infinity, first = -Double.infinity
            for (b, l) in blocks.enumerated() {
                let row = (0 ..< Self.blocks[b]).map { Double(l[r * ldl + $0]) }
                let blockMax = row.max()!
                if first == -.infinity { first = blockMax }
                globalMax = max(globalMax, blockMax)
                let p = states[b].p
                for j in 0 ..< Self.ldp {
                    let got = Double(anysize_bf16_to_float(p[r * Self.ldp + j]))
                    if j >= Self.blocks[b] || globalMax == -.infinity {
                        XCTAssertEqual(got, 0, "row \(r) block \(b) column \(j): padding and unattendable rows are 0")
                        continue
                    }
                    let exact = Foundation.exp(row[j] - globalMax)
                    XCTAssertLessThanOrEqual(abs(got - exact), (1.0 / 256 + 1e-6) * exact + 1e-30, "P row \(r) block \(b) column \(j)")
                }
            }
            let last = states[states.count - 1]
            guard globalMax > -.infinity else {
                XCTAssertEqual(last.sum[r], 0)
                XCTAssertEqual(last.max[r], -.infinity)
                XCTAssertEqual(last.acc[r * Self.ldacc], 1, "an unattendable row's accumulator is untouched")
                continue
            }
            let everything = blocks.enumerated().flatMap { b, l in (0 ..< Self.blocks[b]).map { Double(l[r * ldl + $0]) } }
            let weights = everything.map { Foundation.exp($0 - globalMax) }
            let s = weights.reduce(0, +)
            let t = zip(weights, everything).reduce(0.0) { $0 + ($1.0 > 0 ? $1.0 * ($1.1 - globalMax) : 0) }
            XCTAssertEqual(Double(last.max[r]), globalMax)
            XCTAssertEqual(Double(last.sum[r]), s, accuracy: 1e-5 * s, "sum row \(r)")
            XCTAssertEqual(Double(last.entropy[r]), t, accuracy: 1e-5 * (abs(t) + s), "entropy term row \(r)")
            // The accumulator started at 1 and was rescaled by e^{m - m'} at each new maximum: e^{first - final}.
            for j in 0 ..< Self.accCols {
                XCTAssertEqual(Double(last.acc[r * Self.ldacc + j]), Foundation.exp(first - globalMax),
                               accuracy: 1e-5 * Foundation.exp(first - globalMax), "accumulator row \(r)")
            }
            XCTAssertEqual(last.acc[r * Self.ldacc + Self.accCols], 1, "columns past accCols are untouched")
        }
    }

    /// Without an entropy pointer the entropy terms are neither read nor written.
    func testEntropyIsOptional() {
        let (states, _) = run(anysize_bf16_softmax_rows, entropy: false)
        XCTAssertEqual(states.last!.entropy, [Float](repeating: 0, count: Self.rows))
        XCTAssertNotEqual(states.last!.sum[0], 0)
    }

    /// The AVX-512 version gives exactly the scalar version's values (bit for bit).
    func testMatchesScalar() throws {
        try XCTSkipUnless(BFloat16.hardwareSupport, "no AVX512-BF16 on this CPU: only the scalar version runs")
        let fast = run(anysize_bf16_softmax_rows, entropy: true).states
        let slow = run(anysize_bf16_softmax_rows_scalar, entropy: true).states
        for (b, (f, s)) in zip(fast, slow).enumerated() {
            XCTAssertEqual(f.p, s.p, "P of block \(b)")
            XCTAssertEqual(f.max, s.max)
            XCTAssertEqual(f.sum.map(\.bitPattern), s.sum.map(\.bitPattern), "sums of block \(b)")
            XCTAssertEqual(f.entropy.map(\.bitPattern), s.entropy.map(\.bitPattern), "entropy terms of block \(b)")
            XCTAssertEqual(f.acc.map(\.bitPattern), s.acc.map(\.bitPattern), "accumulators of block \(b)")
        }
    }
}
