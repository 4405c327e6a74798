/*
 * segloss/segloss.h — the whole public API in one include.
 *
 *   core.h      status codes, dims, overflow-checked sizes
 *   io.h        arrays, .npy and NIfTI files
 *   loss.h      losses with exact gradients, the spec, the catalogue
 *   schedule.h  loss schedules: stages, ramps, state for resuming
 *   geometry.h  distance transforms, surfaces, components, skeletons
 *   crf.h       dense CRF post-processing, the permutohedral lattice filter
 *   metrics.h   overlap, distance and lesion-wise metrics with conventions
 *   stats.h     paired statistics of the benchmark
 *   rng.h       the project's seeded random numbers
 *   nn.h        the U-Net, optimisers, learning-rate schedules
 *   data.h      training data sources, augmentation, batch sampling
 *   train.h     the trainer, checkpoints, prediction
 *
 * Link with `pkg-config --libs segloss`.
 */
#ifndef SEGLOSS_SEGLOSS_H
#define SEGLOSS_SEGLOSS_H

#include "segloss/core.h"
#include "segloss/io.h"
#include "segloss/loss.h"
#include "segloss/schedule.h"
#include "segloss/geometry.h"
#include "segloss/crf.h"
#include "segloss/metrics.h"
#include "segloss/stats.h"
#include "segloss/rng.h"
#include "segloss/nn.h"
#include "segloss/data.h"
#include "segloss/train.h"
#include "segloss/png.h"
#include "segloss/bench.h"

#endif
