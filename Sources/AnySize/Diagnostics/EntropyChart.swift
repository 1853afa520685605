import Foundation

/// A line chart of an `AttentionReport`: x = self-attention layer (execution order), y = the layer's entropy averaged
/// over all model calls of a run, one polyline per (size, formulation). The trained-size `standard` run is drawn
/// thick and black; other runs get distinct colours, and a marker shape per formulation. Shaded bands mark the UNet
/// level of each layer. Drawn with `ChartCanvas` and the bundled `BitmapFont`; no dependencies.
public struct EntropyChart {
    public var report: AttentionReport
    public var title: String
    public var width: Int
    public var height: Int

    public init(report: AttentionReport, title: String, width: Int = 960, height: Int = 600) {
        precondition(width >= 480 && height >= 320, "chart \(width)x\(height) is too small; use at least 480x320")
        self.report = report
        self.title = title
        self.width = width
        self.height = height
    }

    /// Line colours for the runs other than the baseline, in run order (cycled).
    public static let palette: [ChartColor] = [
        ChartColor(31, 119, 180), ChartColor(255, 127, 14), ChartColor(44, 160, 44), ChartColor(214, 39, 40),
        ChartColor(148, 103, 189), ChartColor(140, 86, 75), ChartColor(227, 119, 194), ChartColor(188, 189, 34),
        ChartColor(23, 190, 207), ChartColor(127, 127, 127), ChartColor(0, 128, 128), ChartColor(128, 0, 0),
        ChartColor(0, 0, 160), ChartColor(160, 120, 0), ChartColor(90, 0, 140),
    ]

    /// The marker of each formulation.
    public static func marker(for mode: AttentionMode) -> ChartMarker {
        switch mode {
        case .standard: return .circle
        case .scaled: return .square
        case .local: return .triangle
        case .logBias: return .diamond
        case .auto: return .cross
        }
    }

    private struct Series {
        let label: String
        let values: [Double]
        let color: ChartColor
        let marker: ChartMarker
        let isBaseline: Bool
    }

    private var series: [Series] {
        var colourIndex = 0
        return report.runs.map { run in
            let label = "\(run.width)x\(run.height) " + (run.mode == .auto ? "auto:\(run.resolvedName)" : run.mode.rawValue)
            let color: ChartColor
            if run.isBaseline {
                color = .black
            } else {
                color = Self.palette[colourIndex % Self.palette.count]
                colourIndex += 1
            }
            return Series(label: label, values: run.meanEntropyPerLayer, color: color,
                          marker: Self.marker(for: run.mode), isBaseline: run.isBaseline)
        }
    }

    /// Draws the chart.
    public func render() -> RGBImage {
        var canvas = ChartCanvas(width: width, height: height)
        let all = series
        let layers = report.layerCount
        let calls = report.baseline.map { Set($0.records.map(\.step)).count } ?? 0
        let grey = ChartColor(90, 90, 90)

        // Legend size decides the plot's right edge.
        let legendScale = all.count * 22 > height - 120 ? 1 : 2
        let rowHeight = legendScale == 2 ? 22 : 12
        let baselineNote = "(trained, baseline)"
        let legendText = max(BitmapFont.width(of: "size, attention", scale: 2), BitmapFont.width(of: baselineNote, scale: legendScale),
                             all.map { BitmapFont.width(of: $0.label, scale: legendScale) }.max() ?? 0)
        let legendWidth = min(max(legendText + 52, 180), width / 3)
        let left = 86, top = 58, bottom = height - 78
        let right = width - legendWidth - 28
        let plotWidth = Double(right - left), plotHeight = Double(bottom - top)

        // y range: nice ticks around all plotted values
        let values = all.flatMap(\.values)
        var low = values.min() ?? 0, high = values.max() ?? 1
        if high - low < 1e-9 { low -= 0.5; high += 0.5 }
        let step = Self.niceStep((high - low) / 6)
        low = (low / step).rounded(.down) * step
        high = (high / step).rounded(.up) * step
        func px(_ layer: Int) -> Double {
            layers > 1 ? Double(left) + 16 + (plotWidth - 32) * Double(layer) / Double(layers - 1) : Double(left) + plotWidth / 2
        }
        func py(_ value: Double) -> Double { Double(bottom) - (value - low) / (high - low) * plotHeight }

        // Level bands (shaded alternately) with their level named at the top of the plot.
        let levels = levelOfLayer(count: layers)
        var start = 0
        while start < layers {
            var end = start
            while end + 1 < layers && levels[end + 1] == levels[start] { end += 1 }
            let x0 = start == 0 ? left : Int((px(start - 1) + px(start)) / 2)
            let x1 = end == layers - 1 ? right : Int((px(end) + px(end + 1)) / 2)
            if levels[start] % 2 == 1 { canvas.fill(x0: x0, y0: top, x1: x1, y1: bottom, ChartColor(236, 240, 246)) }
            let name = "L\(levels[start])"
            if x1 - x0 > BitmapFont.width(of: name, scale: 2) + 4 {
                canvas.text(name, x: (x0 + x1 - BitmapFont.width(of: name, scale: 2)) / 2, y: top + 6, scale: 2, ChartColor(120, 130, 150))
            }
            start = end + 1
        }

        // Grid lines and y ticks.
        let decimals = max(0, Int((-log10(step)).rounded(.up)))
        var tick = low
        while tick <= high + step / 2 {
            let y = Int(py(tick).rounded())
            canvas.fill(x0: left, y0: y, x1: right, y1: y + 1, ChartColor(210, 210, 210))
            canvas.fill(x0: left - 6, y0: y, x1: left, y1: y + 1, grey)
            let label = String(format: "%.\(decimals)f", tick)
            canvas.text(label, x: left - 10 - BitmapFont.width(of: label, scale: 2), y: y - 7, scale: 2, grey)
            tick += step
        }
        // x ticks: every layer (every other one if crowded).
        let every = (plotWidth / Double(max(layers, 1))) < 28 ? 2 : 1
        for layer in 0 ..< layers {
            let x = Int(px(layer).rounded())
            canvas.fill(x0: x, y0: bottom, x1: x + 1, y1: bottom + 6, grey)
            guard layer % every == 0 else { continue }
            let label = "\(layer)"
            canvas.text(label, x: x - BitmapFont.width(of: label, scale: 2) / 2, y: bottom + 10, scale: 2, grey)
        }
        // Axes.
        canvas.fill(x0: left, y0: top, x1: left + 2, y1: bottom + 1, .black)
        canvas.fill(x0: left, y0: bottom, x1: right, y1: bottom + 2, .black)

        // Lines: the baseline first (thick, black), the others over it.
        for s in (all.filter(\.isBaseline) + all.filter { !$0.isBaseline }) {
            let points = s.values.enumerated().map { (x: px($0.offset), y: py($0.element)) }
            canvas.polyline(points, s.color, lineWidth: s.isBaseline ? 5 : 2)
            for p in points { canvas.marker(s.marker, cx: p.x, cy: p.y, r: s.isBaseline ? 5 : 4, s.color) }
        }

        // Titles.
        let titleWidth = BitmapFont.width(of: title, scale: 2)
        canvas.text(title, x: max(8, (width - titleWidth) / 2), y: 18, scale: 2, .black)
        let xLabel = "self-attention layer (bands: UNet level L0, L1, ...)"
        canvas.text(xLabel, x: left + (right - left - BitmapFont.width(of: xLabel, scale: 2)) / 2, y: bottom + 38, scale: 2, .black)
        let yLabel = "entropy, mean over \(calls) model calls (nats)"
        canvas.text(yLabel, x: 12, y: (top + bottom + BitmapFont.width(of: yLabel, scale: 2)) / 2, scale: 2, .black, vertical: true)

        // Legend.
        let lx = right + 22
        var ly = top
        canvas.text("size, attention", x: lx, y: ly, scale: 2, .black)
        ly += 26
        for s in (all.filter(\.isBaseline) + all.filter { !$0.isBaseline }) {
            let cy = Double(ly) + Double(rowHeight) / 2 - 3
            canvas.polyline([(Double(lx), cy), (Double(lx + 30), cy)], s.color, lineWidth: s.isBaseline ? 5 : 2)
            canvas.marker(s.marker, cx: Double(lx + 15), cy: cy, r: s.isBaseline ? 5 : 4, s.color)
            canvas.text(s.label, x: lx + 40, y: Int(cy) - 3 * legendScale - 1, scale: legendScale, .black)
            ly += rowHeight
            if s.isBaseline {
                canvas.text(baselineNote, x: lx + 40, y: ly - 4, scale: legendScale, grey)
                ly += rowHeight
            }
        }
        return canvas.image
    }

    /// The UNet level of each layer, from the records.
    private func levelOfLayer(count: Int) -> [Int] {
        var levels = [Int](repeating: 0, count: count)
        for run in report.runs {
            for r in run.records where r.layer < count { levels[r.layer] = r.level }
        }
        return levels
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        let magnitude = pow(10, (log10(max(raw, 1e-12))).rounded(.down))
        let norm = raw / magnitude
        return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude
    }
}
