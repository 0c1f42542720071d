/* Callgrind's client requests for benchmarks/marks.py: no-ops when not run under valgrind. */
#include <valgrind/callgrind.h>

int on_valgrind(void) { return RUNNING_ON_VALGRIND; }

void count_from_here(void) {
    CALLGRIND_START_INSTRUMENTATION;
    CALLGRIND_ZERO_STATS;
}

void count_to_here(const char *name) {
    CALLGRIND_DUMP_STATS_AT(name);
    CALLGRIND_STOP_INSTRUMENTATION;
}
