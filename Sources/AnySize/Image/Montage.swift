/// Side-by-side panels of images with a label above each, on white: the picture `make run` writes (trained size,
/// 2x sampled directly, 2x composed) and the README shows. Labels are drawn with the bundled `BitmapFont`.
///
/// Layout: one row, left to right in the given order. Each panel is as wide as the wider of its image and its
/// label, with `gap` white pixels around and between panels; the label strip (`labelScale` x the font's line
/// height, plus `gap`) sits above the images, which are top-aligned and centred in their panel at their own
/// size (no resampling, so relative sizes stay visible).
public enum Montage {
    /// Largest side of a montage, in pixels (the PNG reader's limit).
    public static let maximumSide = 1 << 16

    /// The montage of `images`, with `labels[i]` above `images[i]` (`labels` empty: no label strip).
    /// - Throws: `AnySizeError(.invalidArgument)` for no images, a label count that is not the image count, a
    ///   label outside printable ASCII, a gap or scale out of range, or a result larger than `maximumSide`.
    public static func make(_ images: [RGBImage], labels: [String] = [], gap: Int = 8, labelScale: Int = 2) throws -> RGBImage {
        guard !images.isEmpty else {
            throw AnySizeError(.invalidArgument, "montage needs at least one image; pass the PNG files to place side by side")
        }
        guard labels.isEmpty || labels.count == images.count else {
            throw AnySizeError(.invalidArgument,
                "montage got \(labels.count) label(s) for \(images.count) image(s); pass one --labels value per image, or none")
        }
        if let bad = labels.first(where: { label in !label.allSatisfy { ($0.asciiValue ?? 0) >= 32 && ($0.asciiValue ?? 0) <= 126 } }) {
            throw AnySizeError(.invalidArgument,
                "montage label '\(bad)' has characters outside printable ASCII; the bundled bitmap font draws ASCII only")
        }
        guard (0 ... 256).contains(gap) else {
            throw AnySizeError(.invalidArgument, "montage gap \(gap) is outside 0 ... 256 pixels")
        }
        guard (1 ... 16).contains(labelScale) else {
            throw AnySizeError(.invalidArgument, "montage label scale \(labelScale) is outside 1 ... 16")
        }
        let labelWidths = labels.isEmpty ? images.map { _ in 0 } : labels.map { BitmapFont.width(of: $0, scale: labelScale) }
        let panelWidths = zip(images, labelWidths).map { max($0.width, $1) }
        let strip = labels.isEmpty ? 0 : BitmapFont.lineHeight * labelScale + gap
        let width = panelWidths.reduce(gap) { $0 + $1 + gap }
        let height = gap + strip + (images.map(\.height).max() ?? 0) + gap
        guard width <= maximumSide, height <= maximumSide else {
            throw AnySizeError(.invalidArgument,
                "montage would be \(width)x\(height) pixels; at most \(maximumSide) a side: use fewer or smaller images")
        }
        var canvas = ChartCanvas(width: width, height: height)
        var x = gap
        for (i, image) in images.enumerated() {
            let panel = panelWidths[i]
            if !labels.isEmpty {
                canvas.text(labels[i], x: x + (panel - labelWidths[i]) / 2, y: gap, scale: labelScale, .black)
            }
            canvas.paste(image, x: x + (panel - image.width) / 2, y: gap + strip)
            x += panel + gap
        }
        return canvas.image
    }

    /// Reads the PNG files `inputs`, makes their montage and writes it to `output` (atomically; `output` may not
    /// be one of the inputs).
    /// - Throws: `AnySizeError` naming the file at fault (unreadable or not a PNG, output path not writable) or the
    ///   argument (see `make`), before anything is written.
    public static func write(inputs: [String], labels: [String] = [], gap: Int = 8, labelScale: Int = 2, output: String) throws {
        var files = InputFiles()
        for path in inputs { files.add(path) }
        try FileIO.checkOutput(output, flag: "--output", inputs: files)
        let images = try inputs.map { try PNGReader.read(path: $0) }
        let montage = try make(images, labels: labels, gap: gap, labelScale: labelScale)
        try PNGWriter.write(montage, to: output, text: [("Software", "AnySize montage"),
                                                        ("Description", labels.joined(separator: " | "))])
    }
}
