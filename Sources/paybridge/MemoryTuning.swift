import CMemory
import Foundation

/// glibc's allocator, tuned for a process that handles multi-megabyte pages on several threads.
enum MemoryTuning {
    static func apply() {
        // Buffers of 1 MiB and more (page bodies) are mapped and unmapped on their own, so
        // freeing one gives the memory back; a fixed threshold also stops glibc from raising it
        // after the first large free, which otherwise keeps each page's memory resident. Fewer
        // per-thread arenas hold less memory in free lists that no thread reuses.
        let applied = paybridge_tune_malloc(1 << 20, 2)
        if ProcessInfo.processInfo.environment["PB_DEBUG_MALLOC"] != nil { print("tune_malloc applied:", applied) }
    }
}
