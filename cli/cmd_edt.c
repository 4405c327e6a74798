/*
 * segloss edt IN OUT [--signed | --signed-kervadec | --multilabel]
 *                    [--spacing Z,Y,X] [--float64] [--threads N]
 *
 * Distance maps of a mask or label map, as scipy's distance_transform_edt
 * computes them by default (the distance of each non-zero voxel to the
 * nearest zero voxel, in mm). IN is .npy, NIfTI (.nii, .nii.gz) or PNG, OUT
 * .npy or NIfTI, chosen by extension; a NIfTI output copies the geometry of a NIfTI input.
 * Thin over sl_image_read / sl_edt / sl_image_write.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli_util.h"
#include "commands.h"
#include "segloss/geometry.h"
#include "segloss/io.h"

static const char *usage_text =
    "usage: segloss edt IN OUT [options]\n"
    "\n"
    "Exact Euclidean distance transform of IN, written to OUT (float32 unless --float64).\n"
    "IN is .npy, .nii, .nii.gz or .png, OUT .npy, .nii or .nii.gz (by extension). Arrays are C order, slowest\n"
    "axis first: a NIfTI image (nx, ny, nz) is the array (nz, ny, nx), spacing (dz, dy, dx).\n"
    "IN has 1, 2 or 3 axes, any integer, bool or float dtype; non-zero is foreground.\n"
    "\n"
    "  (default)           distance of each non-zero voxel to the nearest zero voxel, 0 on\n"
    "                      zero voxels (scipy.ndimage.distance_transform_edt); +inf\n"
    "                      everywhere if IN has no zero voxel\n"
    "  --signed            signed distance: -(distance to background) inside,\n"
    "                      +(distance to foreground) outside\n"
    "  --signed-kervadec   the boundary-loss map of Kervadec et al. (MIDL 2019):\n"
    "                      edt(outside) - (edt(inside) - 1)\n"
    "  --multilabel        each labelled voxel: distance to the nearest voxel of another\n"
    "                      label (integer label maps)\n"
    "  --spacing Z,Y,X     voxel size in mm per array axis (as many values as IN has axes);\n"
    "                      default: the NIfTI header's pixdim, or 1 for .npy\n"
    "  --float64           write float64 distances\n"
    "  --threads N         threads (default: all cores; the result does not depend on N)\n"
    "\n"
    "A NIfTI OUT copies the qform/sform of a NIfTI IN and stores the spacing used.\n"
    "Exit codes: 0 ok, 1 the input could not be read or the output written, 2 bad usage.\n";

typedef struct {
    const char *in, *out;
    sl_edt_mode mode;
    int mode_set, f64, threads, nspacing;
    double spacing[SL_MAX_SPATIAL];
} edt_args;

static int parse(int argc, char **argv, edt_args *o)
{
    memset(o, 0, sizeof *o);
    o->mode = SL_EDT_PLAIN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        static const struct {
            const char *flag;
            sl_edt_mode mode;
        } modes[] = {{"--signed", SL_EDT_SIGNED},
                     {"--signed-kervadec", SL_EDT_SIGNED_KERVADEC},
                     {"--multilabel", SL_EDT_MULTILABEL}};
        int is_mode = 0;
        for (size_t k = 0; k < sizeof modes / sizeof *modes; k++)
            if (!strcmp(a, modes[k].flag)) {
                if (o->mode_set && o->mode != modes[k].mode)
                    return cli_fail("edt", EXIT_USAGE, "choose one of --signed, --signed-kervadec, --multilabel");
                o->mode = modes[k].mode;
                o->mode_set = is_mode = 1;
            }
        if (is_mode) continue;
        if (!strcmp(a, "--float64")) {
            o->f64 = 1;
        } else if (cli_opt(a, "--spacing", &v)) {
            const char *s = cli_value("edt", argc, argv, &i, v);
            if (!s) return EXIT_USAGE;
            o->nspacing = cli_parse_list(s, o->spacing, SL_MAX_SPATIAL);
            if (o->nspacing < 1)
                return cli_fail("edt", EXIT_USAGE, "--spacing expects 1 to 3 comma-separated numbers, got '%s'", s);
            for (int k = 0; k < o->nspacing; k++)
                if (!(o->spacing[k] > 0))
                    return cli_fail("edt", EXIT_USAGE, "--spacing values must be positive, got '%s'", s);
        } else if (cli_opt(a, "--threads", &v)) {
            const char *s = cli_value("edt", argc, argv, &i, v);
            long t;
            if (!s) return EXIT_USAGE;
            if (!cli_parse_int(s, &t) || t < 0 || t > 1024)
                return cli_fail("edt", EXIT_USAGE, "--threads expects an integer in [0, 1024], got '%s'", s);
            o->threads = (int)t;
        } else if (a[0] == '-' && a[1] != 0) {
            return cli_fail("edt", EXIT_USAGE, "unknown option '%s' (see segloss edt --help)", a);
        } else if (!o->in) {
            o->in = a;
        } else if (!o->out) {
            o->out = a;
        } else {
            return cli_fail("edt", EXIT_USAGE, "unexpected argument '%s' (expected IN OUT)", a);
        }
    }
    if (!o->in || !o->out) return cli_fail("edt", EXIT_USAGE, "expected IN and OUT files (see segloss edt --help)");
    if (sl_format_from_path(o->in) == SL_FORMAT_UNKNOWN)
        return cli_fail("edt", EXIT_USAGE, "'%s': unknown image format (expected .nii, .nii.gz, .npy or .png)", o->in);
    /* distances are floats: PNG (integers only) is no output format here */
    sl_format of = sl_format_from_path(o->out);
    if (of == SL_FORMAT_UNKNOWN || of == SL_FORMAT_PNG)
        return cli_fail("edt", EXIT_USAGE, "'%s': unknown image format for a distance map (expected .nii, .nii.gz or .npy)",
                        o->out);
    return 0;
}

int cmd_edt(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
    edt_args o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;

    char msg[1024];
    sl_array in = SL_ARRAY_EMPTY, out = SL_ARRAY_EMPTY;
    sl_image_info info;
    if (sl_image_read(o.in, &in, &info, msg, sizeof msg) != SL_OK) return cli_fail("edt", EXIT_WORK, "%s", msg);
    rc = EXIT_WORK;
    if (in.ndim < 1 || in.ndim > SL_MAX_SPATIAL) {
        cli_fail("edt", EXIT_WORK, "%s has %d axes; edt takes 1-, 2- or 3-D images", o.in, in.ndim);
        goto done;
    }
    if (o.nspacing && o.nspacing != in.ndim) {
        cli_fail("edt", EXIT_USAGE, "--spacing has %d values but %s has %d axes", o.nspacing, o.in, in.ndim);
        rc = EXIT_USAGE;
        goto done;
    }
    if (o.mode == SL_EDT_MULTILABEL && !sl_dtype_is_integer(in.dtype)) {
        cli_fail("edt", EXIT_WORK, "--multilabel needs an integer label map; %s is %s", o.in, sl_dtype_name(in.dtype));
        goto done;
    }
    if (info.has_spacing && info.nifti.spacing_defaulted && !o.nspacing)
        cli_warn("edt", "%s has a zero pixdim; 1 mm used for that axis", o.in);

    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = in.ndim;
    for (int a = 0; a < in.ndim; a++) {
        g.shape[a] = in.shape[a];
        g.spacing[a] = o.nspacing ? o.spacing[a] : info.spacing[a];
    }
    sl_dtype odt = o.f64 ? SL_DT_F64 : SL_DT_F32;
    sl_status st = sl_array_alloc(&out, odt, in.ndim, in.shape);
    if (st != SL_OK) {
        cli_fail("edt", EXIT_WORK, "cannot allocate the %s output for %s: %s", sl_dtype_name(odt), o.in,
                 sl_strerror(st));
        goto done;
    }
    sl_edt_opts eo = SL_EDT_OPTS_DEFAULT;
    eo.mode = o.mode;
    eo.threads = o.threads;
    st = sl_edt(in.data, in.dtype, &g, &eo, out.data, odt, msg, sizeof msg);
    if (st != SL_OK) {
        cli_fail("edt", EXIT_WORK, "%s: %s", o.in, msg[0] ? msg : sl_strerror(st));
        goto done;
    }
    /* An input without background (or without foreground, for the signed
     * map) has no finite distance; say so rather than write a silent inf. */
    int64_t n = sl_array_count(&out), ninf = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = odt == SL_DT_F32 ? ((float *)out.data)[i] : ((double *)out.data)[i];
        if (isinf(d)) ninf++;
    }
    if (ninf) {
        const char *why = o.mode == SL_EDT_MULTILABEL ? "a label with no voxel of another label"
                          : o.mode == SL_EDT_PLAIN     ? "no zero voxel"
                                                       : "no boundary: it is all zero or all non-zero";
        cli_warn("edt", "%lld of %lld distances are +-inf (%s has %s)", (long long)ninf,
                (long long)n, o.in, why);
    }
    st = sl_image_write(o.out, &out, g.spacing, &info, msg, sizeof msg);
    if (st != SL_OK) {
        cli_fail("edt", EXIT_WORK, "%s", msg);
        goto done;
    }
    rc = 0;
done:
    sl_array_free(&in);
    sl_array_free(&out);
    return rc;
}
