#include "CMemory.h"
#include <stdlib.h>  // defines __GLIBC__ on glibc systems

#if defined(__GLIBC__)
#include <malloc.h>

int paybridge_tune_malloc(int mmap_threshold, int arena_max) {
    return mallopt(M_MMAP_THRESHOLD, mmap_threshold) && mallopt(M_ARENA_MAX, arena_max);
}

int paybridge_release_free_memory(void) { return malloc_trim(0); }
#else
int paybridge_release_free_memory(void) { return 0; }
int paybridge_tune_malloc(int mmap_threshold, int arena_max) { return 0; }
#endif
