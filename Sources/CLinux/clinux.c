#define _GNU_SOURCE
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/fs.h>
#include "clinux.h"

const unsigned int quantd_rename_noreplace = RENAME_NOREPLACE;
const unsigned int quantd_rename_exchange = RENAME_EXCHANGE;

const int quantd_o_direct = O_DIRECT;

int quantd_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}
