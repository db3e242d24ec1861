/* Assemble 2 MiB pages in another process's anonymous memory now (MADV_COLLAPSE through
 * process_madvise), as khugepaged does by itself every 10 s or so: a test makes that
 * moment deterministic. */
#ifndef VS_THP_COLLAPSE_H
#define VS_THP_COLLAPSE_H

#include <sys/types.h>

/* Ask for a collapse of each private writable anonymous mapping of pid at least 2 MiB
 * long; the number of mappings where at least one 2 MiB page was assembled (mappings
 * marked MADV_NOHUGEPAGE refuse), or -1 with errno when the kernel cannot be asked. */
int thp_collapse_anon(pid_t pid);

#endif
