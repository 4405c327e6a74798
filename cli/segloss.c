/*
 * segloss — the command-line tool. This file only dispatches to the
 * subcommands (one file each, cli/cmd_*.c); see `segloss --help`.
 */
#include <stdio.h>
#include <string.h>
#include "cli_util.h"
#include "commands.h"
#include "internal.h"
#include "segloss/core.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"loss", cmd_loss, "evaluate a loss spec and its gradient on .npy arrays"},
    {"demo", cmd_demo, "which losses notice a missed small lesion: a table on a realistic case"},
    {"edt", cmd_edt, "exact Euclidean distance maps of a mask (NIfTI or .npy)"},
    {"eval", cmd_eval, "score predicted label maps against ground truth (files or folders)"},
    {"train", cmd_train, "train a U-Net with a loss or loss schedule; test metrics, resumable"},
    {"predict", cmd_predict, "segment images (NIfTI, .npy, PNG) with a trained model"},
    {"bench", cmd_bench, "the controlled loss benchmark: train, test, compare, rank, report"},
    {"fuse", cmd_fuse, "fuse several raters' label maps (STAPLE or majority vote)"},
};

static void usage(FILE *f)
{
    fprintf(f, "segloss %s — losses, geometry and metrics for segmentation under class imbalance\n\n"
               "usage: segloss <command> [options]   (segloss <command> --help for details)\n\ncommands:\n",
            sl_version());
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nevery command: --max-voxels N  refuse images above N voxels (default 2^28; also SEGLOSS_MAX_VOXELS)\n");
}

int main(int argc, char **argv)
{
    if (!cli_take_max_voxels(&argc, argv)) return EXIT_USAGE;
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("segloss %s\n", sl_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    char name[256];
    fprintf(stderr, "segloss: unknown command '%s' (see segloss --help)\n", sl_escape_line(name, sizeof name, argv[1]));
    return EXIT_USAGE;
}
