#ifndef PAYBRIDGE_CMEMORY_H
#define PAYBRIDGE_CMEMORY_H

/// glibc's mallopt for the two settings paybridge uses (Swift does not import <malloc.h>).
/// Returns 1 when both were applied; does nothing on other C libraries.
int paybridge_tune_malloc(int mmap_threshold, int arena_max);

/// glibc's malloc_trim(0): gives the free pages of every arena back to the system.
/// Returns 1 when memory was released; does nothing on other C libraries.
int paybridge_release_free_memory(void);

#endif
