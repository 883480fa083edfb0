#ifndef QUANTD_CLINUX_H
#define QUANTD_CLINUX_H

/// Linux calls that Swift's Glibc module does not import (they need _GNU_SOURCE).

/// renameat2(2). Returns 0 or -1 with errno set.
int quantd_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

/// Flags for quantd_renameat2.
extern const unsigned int quantd_rename_noreplace;
extern const unsigned int quantd_rename_exchange;

/// O_DIRECT, for fcntl(F_SETFL).
extern const int quantd_o_direct;

#endif
