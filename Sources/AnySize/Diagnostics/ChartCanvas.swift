import Foundation

/// An RGB colour for charts.
public struct ChartColor: Sendable, Equatable {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }

    public static let white = ChartColor(255, 255, 255)
    public static let black = ChartColor(0, 0, 0)
}

/// Marker shapes drawn at polyline points.
public enum ChartMarker: Sendable, CaseIterable {
    case circle, square, triangle, diamond, cross
}

/// A white RGB drawing surface with anti-aliased thick lines and markers, filled rectangles and 5 x 7 bitmap text.
struct ChartCanvas {
    private(set) var image: RGBImage

    init(width: Int, height: Int) {
        image = RGBImage(width: width, height: height, pixels: [UInt8](repeating: 255, count: width * height * 3))
    }

    var width: Int { image.width }
    var height: Int { image.height }

    /// Mixes `color` into pixel (x, y) with opacity `alpha` in [0, 1]; outside the canvas does nothing.
    mutating func blend(_ x: Int, _ y: Int, _ color: ChartColor, _ alpha: Double) {
        guard x >= 0, y >= 0, x < width, y < height, alpha > 0 else { return }
        let a = min(alpha, 1)
        let i = (y * width + x) * 3
        func mix(_ old: UInt8, _ new: UInt8) -> UInt8 { UInt8((Double(old) + (Double(new) - Double(old)) * a).rounded()) }
        image.pixels[i] = mix(image.pixels[i], color.r)
        image.pixels[i + 1] = mix(image.pixels[i + 1], color.g)
        image.pixels[i + 2] = mix(image.pixels[i + 2], color.b)
    }

    /// Copies `source` with its top-left corner at (x, y); pixels outside the canvas are dropped.
    mutating func paste(_ source: RGBImage, x: Int, y: Int) {
        for row in 0 ..< source.height where y + row >= 0 && y + row < height {
            for column in 0 ..< source.width where x + column >= 0 && x + column < width {
                let i = ((y + row) * width + x + column) * 3, j = (row * source.width + column) * 3
                image.pixels[i] = source.pixels[j]
                image.pixels[i + 1] = source.pixels[j + 1]
                image.pixels[i + 2] = source.pixels[j + 2]
            }
        }
    }

    /// Fills the pixels x0 ..< x1, y0 ..< y1.
    mutating func fill(x0: Int, y0: Int, x1: Int, y1: Int, _ color: ChartColor, alpha: Double = 1) {
        for y in max(y0, 0) ..< min(y1, height) where y1 > y0 {
            for x in max(x0, 0) ..< min(x1, width) where x1 > x0 { blend(x, y, color, alpha) }
        }
    }

    /// A polyline of `lineWidth` pixels, anti-aliased: each pixel's coverage is clamp(w/2 + 1/2 - d, 0, 1) with d its
    /// centre's distance to the nearest segment, so joints are blended once.
    mutating func polyline(_ points: [(x: Double, y: Double)], _ color: ChartColor, lineWidth: Double) {
        guard let first = points.first else { return }
        let half = lineWidth / 2
        let xs = points.map(\.x), ys = points.map(\.y)
        let x0 = max(0, Int(((xs.min() ?? first.x) - half - 1).rounded(.down)))
        let x1 = min(width - 1, Int(((xs.max() ?? first.x) + half + 1).rounded(.up)))
        let y0 = max(0, Int(((ys.min() ?? first.y) - half - 1).rounded(.down)))
        let y1 = min(height - 1, Int(((ys.max() ?? first.y) + half + 1).rounded(.up)))
        guard x0 <= x1, y0 <= y1 else { return }
        let segments = points.count > 1 ? Array(zip(points, points.dropFirst())) : [(first, first)]
        for y in y0 ... y1 {
            let py = Double(y) + 0.5
            for x in x0 ... x1 {
                let px = Double(x) + 0.5
                var d = Double.infinity
                for (a, b) in segments {
                    // distance from p to segment ab: project, clamp t to [0, 1]
                    let dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy
                    let t = len2 > 0 ? min(max(((px - a.x) * dx + (py - a.y) * dy) / len2, 0), 1) : 0
                    let ex = px - (a.x + t * dx), ey = py - (a.y + t * dy)
                    d = min(d, (ex * ex + ey * ey).squareRoot())
                }
                blend(x, y, color, min(max(half + 0.5 - d, 0), 1))
            }
        }
    }

    /// A filled marker of radius `r` centred at (cx, cy), anti-aliased by 4 x 4 supersampling.
    mutating func marker(_ shape: ChartMarker, cx: Double, cy: Double, r: Double, _ color: ChartColor) {
        func inside(_ dx: Double, _ dy: Double) -> Bool {
            switch shape {
            case .circle: return dx * dx + dy * dy <= r * r
            case .square: return abs(dx) <= r * 0.85 && abs(dy) <= r * 0.85
            case .diamond: return abs(dx) + abs(dy) <= r * 1.25
            case .triangle:  // apex up, base at +0.8 r
                return dy <= r * 0.8 && dy >= -r * 1.1 && abs(dx) <= (dy + r * 1.1) * 0.6
            case .cross:
                let w = r * 0.35
                return (abs(dx - dy) <= w * 1.414 || abs(dx + dy) <= w * 1.414) && abs(dx) <= r && abs(dy) <= r
            }
        }
        let reach = Int((r * 1.3).rounded(.up)) + 1
        for y in Int(cy) - reach ... Int(cy) + reach {
            for x in Int(cx) - reach ... Int(cx) + reach {
                var hits = 0
                for sy in 0 ..< 4 {
                    for sx in 0 ..< 4 where inside(Double(x) + (Double(sx) + 0.5) / 4 - cx, Double(y) + (Double(sy) + 0.5) / 4 - cy) {
                        hits += 1
                    }
                }
                blend(x, y, color, Double(hits) / 16)
            }
        }
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel a `scale` x `scale` square.
    /// `vertical` draws it rotated a quarter turn counter-clockwise (reading upwards), starting at (x, y) bottom-left.
    mutating func text(_ text: String, x: Int, y: Int, scale: Int, _ color: ChartColor, vertical: Bool = false) {
        for (i, character) in text.enumerated() {
            for gy in 0 ..< BitmapFont.lineHeight {
                for gx in 0 ..< BitmapFont.glyphWidth where BitmapFont.isSet(character, x: gx, y: gy) {
                    let u = (i * BitmapFont.advance + gx) * scale, v = gy * scale  // along, across the text
                    if vertical {
                        fill(x0: x + v, y0: y - u - scale, x1: x + v + scale, y1: y - u, color)
                    } else {
                        fill(x0: x + u, y0: y + v, x1: x + u + scale, y1: y + v + scale, color)
                    }
                }
            }
        }
    }
}
