import SafeTensors

/// Which tensors get quantized, and why.
///
/// In a model folder (a transformers `config.json` beside the shards) the default follows what its consumers load:
/// the weights of linear layers (2-D `*.weight`, no `norm`), while embedding tables, an output head (`lm_head`)
/// and convolution weights stay in their source dtype, as vLLM and llm-compressor leave them. A bare checkpoint
/// has no such consumer to satisfy, and the default follows llama.cpp: floating tensors with 2 or more
/// dimensions whose name ends in `weight` and does not contain `norm` (so a conv model is not silently left
/// unquantized). `--include` makes a floating tensor a candidate whatever its name or rank (quantizing an
/// embedding is such an explicit choice); `--exclude` wins over both.
struct Selection: @unchecked Sendable {
    // @unchecked: Regex is not marked Sendable, but a compiled Regex is immutable and only matched against here.
    private let include: [(pattern: String, regex: Regex<AnyRegexOutput>)]
    private let exclude: [(pattern: String, regex: Regex<AnyRegexOutput>)]

    /// The model-folder rule (linear layers only), set once the input is known to be a model folder.
    var linearOnly = false

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
        guard linearOnly else {
            return .quantize(reason: "default rule: float, 2+ dimensions, name ends in 'weight', no 'norm'")
        }
        if t.shape.count > 2 {
            return .keep(reason: "\(t.shape.count)-D weight (a convolution): model folders quantize linear layers only "
                + "(--include to quantize it)")
        }
        switch Self.role(t.name) {
        case .embedding:
            return .keep(reason: "embedding table: transformers and vLLM load embeddings unquantized "
                + "(--include to quantize it)")
        case .head:
            return .keep(reason: "output head: vLLM and llm-compressor leave it unquantized (--include to quantize it)")
        case .linear where t.name.hasSuffix(".weight"):
            return .quantize(reason: "linear layer weight (model folder rule)")
        case .linear:
            return .keep(reason: "not a module's '.weight' (model folders quantize linear layers only)")
        }
    }

    enum Role { case linear, embedding, head }

    /// What a 2-D weight is, by its module's name: transformers names embeddings `*embed*` (`embed_tokens`,
    /// `word_embeddings`, `embed_positions`, `embed_in`/`embed_out`), `wte`/`wpe` (GPT-2) or `shared` (T5), and the
    /// output head `lm_head`.
    static func role(_ name: String) -> Role {
        let parts = name.split(separator: ".")
        let module = (parts.count >= 2 ? parts[parts.count - 2] : parts.last ?? "").lowercased()
        if module == "lm_head" || module == "embed_out" { return .head }
        if module.contains("embed") || ["wte", "wpe", "shared"].contains(module) { return .embedding }
        return .linear
    }

    /// A linear layer's weight, as the model-folder rule and compressed-tensors' `Linear` target see it.
    static func isLinearWeight(_ name: String, shape: [Int]) -> Bool {
        shape.count == 2 && name.hasSuffix(".weight") && !name.lowercased().contains("norm") && role(name) == .linear
    }

    private func matches(_ regex: Regex<AnyRegexOutput>, _ name: String) -> Bool {
        (try? regex.firstMatch(in: name)) != nil
    }
}
