import SafeTensors

/// Which tensors get quantized, and why. The default follows llama.cpp and compressed-tensors:
/// floating tensors with 2 or more dimensions whose name ends in `weight` and does not contain `norm`.
/// `--include` makes a floating tensor a candidate whatever its name or rank; `--exclude` wins over both.
struct Selection: @unchecked Sendable {
    // @unchecked: Regex is not marked Sendable, but a compiled Regex is immutable and only matched against here.
    private let include: [(pattern: String, regex: Regex<AnyRegexOutput>)]
    private let exclude: [(pattern: String, regex: Regex<AnyRegexOutput>)]

    init(include: [String], exclude: [String]) throws(EngineError) {
        func compile(_ patterns: [String], flag: String) throws(EngineError) -> [(String, Regex<AnyRegexOutput>)] {
            var out: [(String, Regex<AnyRegexOutput>)] = []
            for p in patterns {
                do { out.append((p, try Regex(p))) } catch {
                    throw EngineError(.usage, file: flag, reason: "invalid regular expression '\(p)': \(error)", stage: "plan")
                }
            }
            return out
        }
        self.include = try compile(include, flag: "--include")
        self.exclude = try compile(exclude, flag: "--exclude")
    }

    enum Decision: Sendable, Hashable {
        case quantize(reason: String)
        case keep(reason: String)
    }

    func decide(_ t: TensorInfo) -> Decision {
        if let e = exclude.first(where: { matches($0.regex, t.name) }) {
            return .keep(reason: "matched --exclude '\(e.pattern)'")
        }
        guard t.dtype.isQuantizableFloat else {
            return .keep(reason: "dtype \(t.dtype.rawValue) is not a float quantd quantizes")
        }
        guard t.elementCount > 0 else { return .keep(reason: "empty tensor") }
        if let i = include.first(where: { matches($0.regex, t.name) }) {
            return .quantize(reason: "matched --include '\(i.pattern)'")
        }
        if !include.isEmpty { return .keep(reason: "matched no --include pattern") }
        if t.shape.count < 2 { return .keep(reason: "\(t.shape.count)-D (the default rule needs 2 or more dimensions)") }
        if !t.name.hasSuffix("weight") { return .keep(reason: "name does not end in 'weight'") }
        if t.name.lowercased().contains("norm") { return .keep(reason: "name contains 'norm'") }
        return .quantize(reason: "default rule: float, 2+ dimensions, name ends in 'weight', no 'norm'")
    }

    private func matches(_ regex: Regex<AnyRegexOutput>, _ name: String) -> Bool {
        (try? regex.firstMatch(in: name)) != nil
    }
}
