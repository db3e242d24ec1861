/* Which pages guest RAM gets from this host: its memfd is shmem, and shmem gets
 * transparent huge pages only as /sys/kernel/mm/transparent_hugepage/shmem_enabled says
 * (vs_memory_create_layout asks for them with MADV_HUGEPAGE, which "advise" honours). */
#include "vmm/memory.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

bool vs_memory_huge_pages(void)
{
    return strncmp(vs_memory_page_size_note(), "2 MiB", 5) == 0;
}

const char *vs_memory_page_size_note(void)
{
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
    if (!f)
        return "4 KiB (this kernel has no shmem huge pages)";
    if (!fgets(mode, sizeof(mode), f))
        mode[0] = '\0';
    fclose(f);
    if (strstr(mode, "[advise]"))
        return "2 MiB where aligned (shmem_enabled=advise, MADV_HUGEPAGE)";
    if (strstr(mode, "[always]") || strstr(mode, "[within_size]") || strstr(mode, "[force]"))
        return "2 MiB where aligned (shmem_enabled allows them)";
    return "4 KiB (shmem_enabled is never or deny: set it to advise for 2 MiB pages)";
}
