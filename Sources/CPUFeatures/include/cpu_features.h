#ifndef QUANTD_CPU_FEATURES_H
#define QUANTD_CPU_FEATURES_H

/// The x86-64 features the kernel variants are compiled for, as bits of `quantd_cpu_features()`. A vector
/// extension counts only where the OS saves its registers (XCR0): AVX and its kin need the SSE and AVX state,
/// AVX-512 also the opmask and upper ZMM state.
enum {
    QUANTD_CPU_SSE3 = 1u << 0,
    QUANTD_CPU_SSSE3 = 1u << 1,
    QUANTD_CPU_SSE4_1 = 1u << 2,
    QUANTD_CPU_SSE4_2 = 1u << 3,
    QUANTD_CPU_POPCNT = 1u << 4,
    QUANTD_CPU_CX16 = 1u << 5,
    QUANTD_CPU_LAHF_SAHF = 1u << 6,
    QUANTD_CPU_AVX = 1u << 7,
    QUANTD_CPU_AVX2 = 1u << 8,
    QUANTD_CPU_FMA = 1u << 9,
    QUANTD_CPU_F16C = 1u << 10,
    QUANTD_CPU_BMI1 = 1u << 11,
    QUANTD_CPU_BMI2 = 1u << 12,
    QUANTD_CPU_LZCNT = 1u << 13,
    QUANTD_CPU_MOVBE = 1u << 14,
    QUANTD_CPU_XSAVE = 1u << 15,
    QUANTD_CPU_AVX512F = 1u << 16,
    QUANTD_CPU_AVX512BW = 1u << 17,
    QUANTD_CPU_AVX512CD = 1u << 18,
    QUANTD_CPU_AVX512DQ = 1u << 19,
    QUANTD_CPU_AVX512VL = 1u << 20,
    /// The SHA extensions (SHA-NI: SHA256RNDS2, SHA256MSG1/2): CSHA256's fast build.
    QUANTD_CPU_SHA = 1u << 21,
};

/// The features of this CPU and OS, read with CPUID and XGETBV (0 on a non-x86-64 build).
unsigned quantd_cpu_features(void);

#endif
