/*
 * Private helpers of the array type (src/io/array.c) shared by the file
 * formats; the public part (sl_array_alloc, sl_array_to_f32, ...) is in
 * segloss/io.h. Not installed.
 */
#ifndef SL_IO_ARRAY_H
#define SL_IO_ARRAY_H

#include <stddef.h>
#include <stdint.h>
#include "segloss/io.h"

/* Element i of an array of any dtype as double (bool as 0/1; 64-bit
 * integers beyond 2^53 round to the nearest double). */
double sl_array_get_f64(const sl_array *a, int64_t i);

/* Reverses the byte order of n elements of `size` bytes each, in place
 * (size 1: nothing to do). */
void sl_swap_elements(void *data, int64_t n, size_t size);

#endif
