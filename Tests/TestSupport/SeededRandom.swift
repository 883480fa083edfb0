/// A deterministic generator (SplitMix64), so every test input is the same on every run.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Roughly Gaussian (sum of uniforms), with the occasional outlier, like trained weights.
    public mutating func weight(std: Float = 0.02) -> Float {
        var s: Float = 0
        for _ in 0..<4 { s += Float.random(in: -1...1, using: &self) }
        let v = s * std * 0.866
        return Int.random(in: 0..<997, using: &self) == 0 ? v * 12 : v
    }
}
