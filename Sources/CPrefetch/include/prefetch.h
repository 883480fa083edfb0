#ifndef QUANTD_PREFETCH_H
#define QUANTD_PREFETCH_H

/// A hint that the cache line holding `address` will be read soon (prefetcht0 on x86-64). It never faults, so
/// an address past the end of a buffer is harmless. Static inline: Swift callers get the one instruction.
static inline void quantd_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

#endif
