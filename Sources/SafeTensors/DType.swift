/// The element types of the safetensors format, spelled as in the header.
public enum DType: String, Sendable, Hashable, CaseIterable, Codable {
    case BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64
    case F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, F6_E2M3, F6_E3M2, F4

    /// Size of one element in bits (sub-byte types exist: F4, F6_*).
    public var bitsPerElement: Int {
        switch self {
        case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3, .F8_E8M0, .F8_E4M3FNUZ, .F8_E5M2FNUZ: 8
        case .I16, .U16, .F16, .BF16: 16
        case .I32, .U32, .F32: 32
        case .F64, .I64, .U64, .C64: 64
        case .F6_E2M3, .F6_E3M2: 6
        case .F4: 4
        }
    }

    /// Floating types whose values quantd can decode to Float32 and quantize.
    public var isQuantizableFloat: Bool {
        switch self {
        case .F32, .F16, .BF16, .F64: true
        default: false
        }
    }
}
