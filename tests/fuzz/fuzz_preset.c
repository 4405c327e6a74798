/*
 * Fuzz target for the benchmark preset parser (src/bench/preset.c): JSON,
 * then every key checked, every training configuration through the
 * trainer's checks and every loss and schedule through the spec parser.
 *
 * Any byte string must give either a preset whose canonical form parses
 * again to the same canonical form, or an error status with a one-line
 * message and a NULL preset. Anything else abort()s. Nothing is trained.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/bench.h"

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_preset: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    sl_bench_preset *p = (sl_bench_preset *)&text; /* must be reset to NULL on failure */
    char msg[1024] = "";
    sl_status st = sl_bench_preset_parse(&p, text, msg, sizeof msg);
    if (st != SL_OK) {
        CHECK(p == NULL);
        CHECK(msg[0] != 0 && strchr(msg, '\n') == NULL);
        free(text);
        return 0;
    }
    CHECK(p != NULL && p->json != NULL && p->nentries >= 1 && p->ndatasets >= 1 && p->nseeds >= 1);
    CHECK(p->baseline >= 0 && p->baseline < p->nentries);
    /* the canonical form is a fixed point */
    sl_bench_preset *q = NULL;
    st = sl_bench_preset_parse(&q, p->json, msg, sizeof msg);
    CHECK(st == SL_OK && q != NULL);
    CHECK(strcmp(p->json, q->json) == 0);
    sl_bench_preset_free(q);
    sl_bench_preset_free(p);
    free(text);
    return 0;
}
