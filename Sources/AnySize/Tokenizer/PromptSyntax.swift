import Foundation

/// How prompt text is read before tokenization.
public enum PromptSyntax: String, Sendable, CaseIterable {
    /// The AUTOMATIC1111 web UI's emphasis syntax: `(word)`, `[word]`, `(word:1.3)`, escapes, `BREAK`.
    case a1111
    /// The text as it is: every token has weight 1, brackets are ordinary characters.
    case plain

    /// The weighted runs of `text` under this syntax.
    public func runs(of text: String) -> [PromptRun] {
        self == .a1111 ? PromptParser.parse(text) : [PromptRun(text: text, weight: 1)]
    }
}

/// A run of prompt text and its emphasis weight, as the A1111 parser yields them.
public struct PromptRun: Sendable, Equatable {
    public var text: String
    public var weight: Double

    public init(text: String, weight: Double) {
        self.text = text
        self.weight = weight
    }

    /// The marker `BREAK` leaves between runs: it ends the current 75-token chunk. (A1111 marks it with weight -1;
    /// a marker inside brackets gets its weight scaled like any run and is then read as the text "BREAK".)
    public static let chunkBreak = PromptRun(text: "BREAK", weight: -1)
    public var isChunkBreak: Bool { self == Self.chunkBreak }
}

/// The AUTOMATIC1111 web UI's prompt emphasis parser (`modules/prompt_parser.py`, `parse_prompt_attention`),
/// re-implemented from its behaviour and checked against `tools/fixtures_prompts.py`:
/// - `(text)` multiplies the weight of `text` by 1.1, `[text]` by 1 / 1.1, `(text:1.3)` by 1.3; nesting multiplies;
/// - an unclosed `(` or `[` applies its factor to everything after it; a stray `)` or `]` is text;
/// - `\(`, `\)`, `\[`, `\]`, `\\` are the literal characters; a lone `\` is dropped;
/// - `BREAK` as a whole upper-case word (with the whitespace around it) ends a chunk;
/// - adjacent runs of equal weight are merged; an empty prompt is one empty run.
/// One choice of ours: a weight the web UI would fail to read as a number (`(a:1.2.3)`) is kept as text.
public enum PromptParser {
    public static func parse(_ text: String) -> [PromptRun] {
        var runs: [PromptRun] = []
        var rounds: [Int] = [], squares: [Int] = []
        func scale(from start: Int, by factor: Double) {
            for i in start ..< runs.count { runs[i].weight *= factor }
        }
        func appendText(_ piece: Substring) {
            for (i, part) in splitAtBreaks(piece).enumerated() {
                if i > 0 { runs.append(.chunkBreak) }
                runs.append(PromptRun(text: String(part), weight: 1))
            }
        }
        let s = Array(text.unicodeScalars)
        var i = 0
        while i < s.count {
            let c = s[i]
            switch c {
            case "\\":
                if i + 1 < s.count, "()[]\\".unicodeScalars.contains(s[i + 1]) {
                    runs.append(PromptRun(text: String(Character(s[i + 1])), weight: 1))
                    i += 2
                } else {
                    runs.append(PromptRun(text: "", weight: 1))
                    i += 1
                }
                continue
            case "(":
                rounds.append(runs.count)
            case "[":
                squares.append(runs.count)
            case ":":
                if let (weight, end) = explicitWeight(s, colon: i), let start = rounds.popLast() {
                    scale(from: start, by: weight)
                    i = end
                    continue
                }
                appendText(Substring(String(Character(c))))
            case ")":
                if let start = rounds.popLast() { scale(from: start, by: 1.1) } else { appendText(")") }
            case "]":
                if let start = squares.popLast() { scale(from: start, by: 1 / 1.1) } else { appendText("]") }
            default:
                var j = i
                while j < s.count, !"\\()[]:".unicodeScalars.contains(s[j]) { j += 1 }
                var view = String.UnicodeScalarView()
                view.append(contentsOf: s[i ..< j])
                appendText(Substring(String(view)))
                i = j
                continue
            }
            i += 1
        }
        for start in rounds { scale(from: start, by: 1.1) }
        for start in squares { scale(from: start, by: 1 / 1.1) }
        if runs.isEmpty { runs = [PromptRun(text: "", weight: 1)] }
        var merged: [PromptRun] = []
        for run in runs {
            if let last = merged.last, last.weight == run.weight {
                merged[merged.count - 1].text += run.text
            } else {
                merged.append(run)
            }
        }
        return merged
    }

    /// `:\s*([+-]?[.\d]+)\s*\)` at `colon`: the weight and the index after the `)`, or nil.
    private static func explicitWeight(_ s: [Unicode.Scalar], colon: Int) -> (Double, Int)? {
        var j = colon + 1
        while j < s.count, isSpace(s[j]) { j += 1 }
        let numberStart = j
        if j < s.count, s[j] == "+" || s[j] == "-" { j += 1 }
        let digitsStart = j
        while j < s.count, s[j] == "." || ("0" ... "9").contains(s[j]) { j += 1 }
        guard j > digitsStart else { return nil }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: s[numberStart ..< j])
        while j < s.count, isSpace(s[j]) { j += 1 }
        guard j < s.count, s[j] == ")", let weight = Double(String(view)), weight.isFinite else { return nil }
        return (weight, j + 1)
    }

    /// Splits at `\s*\bBREAK\b\s*` (Python `re` semantics: leftmost matches, greedy whitespace).
    static func splitAtBreaks(_ text: Substring) -> [Substring] {
        let s = Array(text.unicodeScalars)
        let word = Array("BREAK".unicodeScalars)
        var parts: [Substring] = []
        var partStart = 0, k = 0
        func substring(_ range: Range<Int>) -> Substring {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: s[range])
            return Substring(String(view))
        }
        while k + word.count <= s.count {
            let before = k > 0 ? s[k - 1] : nil, after = k + word.count < s.count ? s[k + word.count] : nil
            if Array(s[k ..< k + word.count]) == word, !(before.map(isWordCharacter) ?? false),
               !(after.map(isWordCharacter) ?? false) {
                var lower = k
                while lower > partStart, isSpace(s[lower - 1]) { lower -= 1 }
                var upper = k + word.count
                while upper < s.count, isSpace(s[upper]) { upper += 1 }
                parts.append(substring(partStart ..< lower))
                partStart = upper
                k = upper
            } else {
                k += 1
            }
        }
        parts.append(substring(partStart ..< s.count))
        return parts
    }

    /// Python's `\s` for str patterns.
    private static func isSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09 ... 0x0D, 0x1C ... 0x1F: return true
        default: return c.properties.isWhitespace
        }
    }

    /// Python's `\w` for str patterns: alphanumerics and the underscore.
    private static func isWordCharacter(_ c: Unicode.Scalar) -> Bool {
        c == "_" || c.properties.isAlphabetic || c.properties.numericType != nil
    }
}
