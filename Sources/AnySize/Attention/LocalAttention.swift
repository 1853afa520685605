import Foundation

/// Neighbourhood attention with the trained window (K. Crowson's mask), entropy-scaled by key count;
/// METHODS.md formulation 2.
///
/// A query at (y, x) of level l attends keys in a window of ht_l rows by wt_l columns,
/// y0 = clamp(y - ht_l / 2, 0, h_l - ht_l) (likewise for columns); a dimension no larger than trained is
/// spanned whole. Its logits are multiplied by sqrt( ln(K_q) / ln(T_l) ), K_q its attendable keys.
/// With canvas-edge sinks (`edge` = e > 0, LM-Infinite arXiv 2308.16137) the window shrinks by 2e in each
/// dimension that exceeds the trained grid, and every key within e tokens of a canvas border stays
/// attendable by every query (K_q counts the union once).
public struct LocalAttention: AttentionFormulation {
    public let edge: Int

    public init(edge: Int = 0) {
        precondition(edge >= 0, "edge must be >= 0")
        self.edge = edge
    }

    public var name: String { "local" }

    public func modifier(site: AttentionSite, sigma: Double) -> (any AttentionLogitModifier)? {
        let mask = LocalWindowMask(site: site, edge: edge)
        // No larger than trained in both dimensions: every window spans the canvas and this is `scaled`.
        if mask.rows.isWhole && mask.cols.isWhole { return ScaledAttention().modifier(site: site, sigma: sigma) }
        return mask
    }

    /// Mean number of keys a query may attend to at `site`.
    public func meanKeysPerQuery(site: AttentionSite) -> Double {
        let mask = LocalWindowMask(site: site, edge: edge)
        var total = 0
        for y in 0 ..< site.height {
            for x in 0 ..< site.width { total += mask.keyCount(y: y, x: x) }
        }
        return Double(total) / Double(max(site.tokens, 1))
    }
}

/// The window along one axis of the grid.
struct WindowAxis {
    let size: Int      // h_l (or w_l)
    let window: Int    // rows in a window
    let isWhole: Bool  // the window spans the whole axis

    init(size: Int, trained: Int, edge: Int) {
        self.size = size
        if size > trained {
            window = max(1, min(size, trained - 2 * edge))
            isWhole = false
        } else {
            window = size
            isWhole = true
        }
    }

    /// First index of the window of position `p`: clamp(p - window / 2, 0, size - window).
    func start(_ p: Int) -> Int { isWhole ? 0 : min(max(p - window / 2, 0), size - window) }
}

/// Per-block mask and per-query scale of `LocalAttention` at one site, computed from grid coordinates.
struct LocalWindowMask: AttentionLogitModifier {
    let width: Int, height: Int
    let rows: WindowAxis, cols: WindowAxis
    let edge: Int
    let trainedTokens: Int

    init(site: AttentionSite, edge: Int) {
        width = site.width
        height = site.height
        rows = WindowAxis(size: site.height, trained: site.trainedHeight, edge: edge)
        cols = WindowAxis(size: site.width, trained: site.trainedWidth, edge: edge)
        // Sinks only matter when some window is narrower than the canvas.
        self.edge = (rows.isWhole && cols.isWhole) ? 0 : edge
        trainedTokens = site.trainedTokens
    }

    /// Whether key (ky, kx) lies within `edge` of a canvas border.
    @inline(__always) func isSink(_ ky: Int, _ kx: Int) -> Bool {
        edge > 0 && (ky < edge || ky >= height - edge || kx < edge || kx >= width - edge)
    }

    /// K_q = |window ∪ sinks| for the query at (y, x).
    func keyCount(y: Int, x: Int) -> Int {
        let window = rows.window * cols.window
        guard edge > 0 else { return window }
        let interiorRows = max(0, height - 2 * edge), interiorCols = max(0, width - 2 * edge)
        let sinks = height * width - interiorRows * interiorCols
        let y0 = rows.start(y), x0 = cols.start(x)
        let overlapRows = max(0, min(y0 + rows.window, height - edge) - max(y0, edge))
        let overlapCols = max(0, min(x0 + cols.window, width - edge) - max(x0, edge))
        return sinks + overlapRows * overlapCols
    }

    func isBlockActive(queries: Range<Int>, keys: Range<Int>) -> Bool {
        if edge > 0 { return true }  // every key row holds sinks
        let qy0 = queries.lowerBound / width, qy1 = (queries.upperBound - 1) / width
        let ky0 = keys.lowerBound / width, ky1 = (keys.upperBound - 1) / width
        // Window starts grow with y, so the queries' windows cover rows start(qy0) ..< start(qy1) + window.
        return rows.start(qy0) <= ky1 && rows.start(qy1) + rows.window > ky0
    }

    func adjust(_ logits: UnsafeMutablePointer<Float>, stride: Int, queries: Range<Int>, keys: Range<Int>) {
        let t = Double(max(trainedTokens, 2))
        for (r, q) in queries.enumerated() {
            let y = q / width, x = q % width
            let y0 = rows.start(y), x0 = cols.start(x)
            let scale = Float((log(Double(max(keyCount(y: y, x: x), 2))) / log(t)).squareRoot())
            let row = logits + r * stride
            var k = keys.lowerBound
            while k < keys.upperBound {
                let ky = k / width
                let rowEnd = min(keys.upperBound, (ky + 1) * width)
                let inWindowRow = ky >= y0 && ky < y0 + rows.window
                let sinkRow = edge > 0 && (ky < edge || ky >= height - edge)
                for kk in k ..< rowEnd {
                    let kx = kk - ky * width
                    let allowed = sinkRow || (inWindowRow && kx >= x0 && kx < x0 + cols.window)
                        || (edge > 0 && (kx < edge || kx >= width - edge))
                    let i = kk - keys.lowerBound
                    row[i] = allowed ? row[i] * scale : -.infinity
                }
                k = rowEnd
            }
        }
    }
}
