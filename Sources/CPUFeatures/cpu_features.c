#include "cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>

/// XCR0, the register states the OS saves; only to be read when CPUID says OSXSAVE.
static unsigned long long xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

unsigned quantd_cpu_features(void) {
    unsigned a, b, c, d;
    unsigned f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (c & (1u << 0)) f |= QUANTD_CPU_SSE3;
    if (c & (1u << 9)) f |= QUANTD_CPU_SSSE3;
    if (c & (1u << 13)) f |= QUANTD_CPU_CX16;
    if (c & (1u << 19)) f |= QUANTD_CPU_SSE4_1;
    if (c & (1u << 20)) f |= QUANTD_CPU_SSE4_2;
    if (c & (1u << 22)) f |= QUANTD_CPU_MOVBE;
    if (c & (1u << 23)) f |= QUANTD_CPU_POPCNT;
    const int osxsave = (c & (1u << 27)) != 0;
    const int fma = (c & (1u << 12)) != 0, avx = (c & (1u << 28)) != 0, f16c = (c & (1u << 29)) != 0;
    // XMM and YMM state (bits 1, 2); for AVX-512 also opmask, ZMM_Hi256 and Hi16_ZMM (bits 5, 6, 7).
    const unsigned long long state = osxsave ? xcr0() : 0;
    const int ymm = (state & 0x06) == 0x06, zmm = (state & 0xe6) == 0xe6;
    if (osxsave) f |= QUANTD_CPU_XSAVE;
    if (ymm && avx) f |= QUANTD_CPU_AVX;
    if (ymm && fma) f |= QUANTD_CPU_FMA;
    if (ymm && f16c) f |= QUANTD_CPU_F16C;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if (b & (1u << 3)) f |= QUANTD_CPU_BMI1;
        if (b & (1u << 8)) f |= QUANTD_CPU_BMI2;
        if (ymm && (b & (1u << 5))) f |= QUANTD_CPU_AVX2;
        if (b & (1u << 29)) f |= QUANTD_CPU_SHA;
        if (zmm && (b & (1u << 16))) f |= QUANTD_CPU_AVX512F;
        if (zmm && (b & (1u << 17))) f |= QUANTD_CPU_AVX512DQ;
        if (zmm && (b & (1u << 28))) f |= QUANTD_CPU_AVX512CD;
        if (zmm && (b & (1u << 30))) f |= QUANTD_CPU_AVX512BW;
        if (zmm && (b & (1u << 31))) f |= QUANTD_CPU_AVX512VL;
    }
    if (__get_cpuid(0x80000001, &a, &b, &c, &d)) {
        if (c & (1u << 0)) f |= QUANTD_CPU_LAHF_SAHF;
        if (c & (1u << 5)) f |= QUANTD_CPU_LZCNT;
    }
    return f;
}
#else
unsigned quantd_cpu_features(void) { return 0; }
#endif
