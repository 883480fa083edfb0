#ifndef QUANTD_CSHA256_H
#define QUANTD_CSHA256_H

#include <stddef.h>
#include <stdint.h>

/// SHA-256's compression function (FIPS 180-4, 6.2.2) over `count` 64-byte blocks at `data`, on the eight words
/// of `state`: the part of SHA-256 whose state can be saved and taken up again (padding and length stay with the
/// caller). With the SHA extensions only: to be called where CPUID says SHA, SSSE3 and SSE4.1 (`QUANTD_CPU_SHA`
/// of CPUFeatures). Elsewhere quantd hashes with swift-crypto's (BoringSSL's vector code), faster there than
/// portable C (0.13-0.16 GB/s measured here with a first draft, against 1.1 GB/s).
void quantd_sha256_blocks_shani(uint32_t state[8], const uint8_t *data, size_t count);

#endif
