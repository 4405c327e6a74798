/*
 * segloss predict --model FILE [--model FILE...] --input IMG --out OUT [--tta none|flip|rot|aug:N]
 *                 [--probabilities P.npy] [--int8 [--calib IMG]] [--config FILE]
 *                 [--batch N] [--threads T] [--crf [--crf-params K=V,...]]
 *
 * Applies a trained model to an image: NIfTI volumes slice by slice along
 * the training axis (geometry copied to the output), .npy arrays (2-D or
 * 3-D) and PNG images. The intensity normalisation is the training one,
 * read from the run's config.json next to the model. Thin over
 * sl_unet_load, sl_preproc_load and sl_predict_image; --int8 adds
 * sl_unet_calibrate / sl_unet_quantize around a calibration prediction;
 * --crf adds sl_predict_crf on the softmax before the argmax.
 * Several --model options make an ensemble (sl_predict_ensemble: the mean
 * softmax of the models).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli_util.h"
#include "commands.h"
#include "segloss/io.h"
#include "segloss/nn.h"
#include "segloss/png.h"
#include "segloss/train.h"

#define CMD "predict"

static const char *usage_text =
    "usage: segloss predict --model FILE --input IMG --out OUT [options]\n"
    "\n"
    "Segments IMG with a model trained by segloss train and writes the label map to OUT\n"
    "(uint8; int16 beyond 256 classes). IMG and OUT are .nii, .nii.gz, .npy or .png (by\n"
    "extension). A 3-D image (NIfTI, or .npy (D, H, W)) is predicted slice by slice along\n"
    "the training axis; a NIfTI OUT copies a NIfTI IMG's geometry. Sizes that are not a\n"
    "multiple of 2^(depth-1) are padded and cropped back. Intensities are normalised as in\n"
    "training (config.json's predict section). A 3-D model (trained on phantom3d) takes a\n"
    "volume whole: Gaussian-weighted sliding windows of its training patch (nnU-Net),\n"
    "overlapping by 1 - step; --tta flip then averages the 8 mirrorings over (D, H, W).\n"
    "Several --model options make an ensemble (e.g. the seeds or folds of one loss): each\n"
    "model predicts with its own config.json, the softmax is averaged over the models and\n"
    "the labels are its argmax; the models must agree on classes, dimensionality and\n"
    "intensity normalisation.\n"
    "\n"
    "  --model FILE      model.bin of a run (required; repeat it for an ensemble, at\n"
    "                    most 64)\n"
    "  --input IMG       image to segment (required)\n"
    "  --out OUT         label map to write (required; written whole or not at all)\n"
    "  --tta none|flip|rot|aug:N\n"
    "                    average the softmax over transformed inputs, each mapped back\n"
    "                    (none). flip: the 4 mirrorings (3-D models: 8). rot: 'mirror W,\n"
    "                    then k quarter turns in (H, W)', k = 0..3: 8 (3-D models: 16,\n"
    "                    with mirror D). aug:N: N seeded random draws of a rot element\n"
    "                    plus the training's noise/contrast/gamma (N in 1..256)\n"
    "  --tta-seed S      seed of the aug:N draws (0)\n"
    "  --probabilities P.npy\n"
    "                    also write the softmax the labels are the argmax of: float32\n"
    "                    (C, image shape...), channels first (for segloss eval --prob);\n"
    "                    of an ensemble, the mean over the models\n"
    "  --int8            INT8 inference: int8 weights (per output channel) and int8\n"
    "                    convolution inputs calibrated on a float pass over --calib\n"
    "                    (one --model only)\n"
    "  --calib IMG       calibration image for --int8 (default: IMG itself; give\n"
    "                    training images for the usual post-training setting)\n"
    "  --config FILE     the run's config.json (default: next to the model); for an\n"
    "                    ensemble, once per --model in the same order, or not at all\n"
    "  --postprocess auto|none|FILE\n"
    "                    connected-component post-processing of the labels: auto = the\n"
    "                    run's postprocess.json next to the model (segloss train\n"
    "                    --postprocess auto), FILE = such a file (none)\n"
    "  --batch N         slices per forward pass (8)\n"
    "  --step S          3-D models: window step as a fraction of the patch (0.5)\n"
    "  --threads T       threads (default: all cores)\n"
    "  --crf             dense CRF on the softmax before the argmax (Kraehenbuehl & Koltun\n"
    "                    2011; segloss/crf.h): per slice for 2-D models, on the volume for\n"
    "                    3-D models, on the normalised image, NIfTI voxel sizes in mm;\n"
    "                    with --probabilities, the CRF's marginals are written\n"
    "  --crf-params K=V,...\n"
    "                    CRF settings (with --crf): w1 (10), theta_a (80 mm), theta_b\n"
    "                    (0.2, normalised intensity), w2 (3), theta_g (3 mm), iters (5)\n"
    "\n"
    "Exit codes: 0 ok, 1 a file could not be read or written, 2 bad usage.\n";

static int known_format(const char *p)
{
    return sl_png_path(p) || sl_format_from_path(p) != SL_FORMAT_UNKNOWN;
}

/* Reads an image for prediction: 1 on success, else 0 after printing the
 * error. */
static int read_image(const char *path, sl_array *img, sl_image_info *info)
{
    char msg[1024];
    memset(info, 0, sizeof *info);
    sl_status st = sl_png_path(path) ? sl_png_read(path, img, msg, sizeof msg) : sl_image_read(path, img, info, msg, sizeof msg);
    if (st != SL_OK) {
        cli_fail(CMD, EXIT_WORK, "%s", msg);
        return 0;
    }
    if (img->ndim != 2 && img->ndim != 3) {
        cli_fail(CMD, EXIT_WORK, "%s has %d axes; predict takes 2-D (H, W) or 3-D (D, H, W) images", path, img->ndim);
        return 0;
    }
    return 1;
}

#define MAX_MODELS 64

/* config.json in the model's folder */
static void default_config(const char *model, char *cpath, size_t len)
{
    const char *slash = strrchr(model, '/');
    int dl = slash ? (int)(slash - model) : 0;
    if (slash) snprintf(cpath, len, "%.*s/config.json", dl ? dl : 1, dl ? model : "/");
    else snprintf(cpath, len, "config.json");
}

/* Loads a model and its preprocessing: 1 on success, else 0 after printing
 * the error. */
static int load_model(const char *model, const char *config, sl_unet **net, sl_preproc *pp)
{
    char msg[1024];
    int nclass = 0;
    if (sl_unet_load(net, NULL, model, msg, sizeof msg) != SL_OK) {
        cli_fail(CMD, EXIT_WORK, "%s", msg);
        return 0;
    }
    if (sl_preproc_load(pp, &nclass, config, msg, sizeof msg) != SL_OK) {
        cli_fail(CMD, EXIT_WORK, "%s (the run's config.json is needed for the normalisation; see --config)", msg);
        return 0;
    }
    sl_unet_config uc;
    sl_unet_get_config(*net, &uc);
    if (nclass && nclass != uc.num_classes) {
        cli_fail(CMD, EXIT_WORK, "%s describes %d classes but %s has %d: not the model's run", config, nclass, model,
                 uc.num_classes);
        return 0;
    }
    return 1;
}

int cmd_predict(int argc, char **argv)
{
    const char *models[MAX_MODELS], *configs[MAX_MODELS];
    const char *input = NULL, *out = NULL, *calib = NULL, *pout = NULL, *ppost = NULL;
    int int8 = 0, nmodels = 0, nconfigs = 0, crf = 0;
    const char *crf_text = NULL;
    sl_crf_params cp = SL_CRF_PARAMS_DEFAULT;
    sl_predict_opts po = SL_PREDICT_OPTS_DEFAULT;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v, *s;
        long n;
        if (cli_opt(a, "--model", &v)) {
            if (nmodels == MAX_MODELS) return cli_fail(CMD, EXIT_USAGE, "at most %d --model options", MAX_MODELS);
            if (!(models[nmodels++] = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--input", &v)) {
            if (!(input = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--out", &v)) {
            if (!(out = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--probabilities", &v)) {
            if (!(pout = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--postprocess", &v)) {
            if (!(ppost = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            if (!*ppost) return cli_fail(CMD, EXIT_USAGE, "--postprocess expects auto, none or a file");
        } else if (cli_opt(a, "--config", &v)) {
            if (nconfigs == MAX_MODELS) return cli_fail(CMD, EXIT_USAGE, "at most %d --config options", MAX_MODELS);
            if (!(configs[nconfigs++] = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
        } else if (!strcmp(a, "--int8")) {
            int8 = 1;
        } else if (!strcmp(a, "--crf")) {
            crf = 1;
        } else if (cli_opt(a, "--crf-params", &v)) {
            if (!(crf_text = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--calib", &v)) {
            if (!(calib = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--tta", &v)) {
            if (!(s = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            sl_status ts = sl_tta_parse(s, &po.tta, &po.tta_n);
            if (ts == SL_ERANGE) return cli_fail(CMD, EXIT_USAGE, "--tta aug:N needs N in 1..256, got '%s'", s);
            if (ts != SL_OK) return cli_fail(CMD, EXIT_USAGE, "--tta expects none, flip, rot or aug:N, got '%s'", s);
        } else if (cli_opt(a, "--tta-seed", &v)) {
            if (!(s = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &n) || n < 0) return cli_fail(CMD, EXIT_USAGE, "--tta-seed expects a non-negative integer, got '%s'", s);
            po.tta_seed = (uint64_t)n;
        } else if (cli_opt(a, "--threads", &v)) {
            if (!(s = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &n) || n < 0 || n > 1024)
                return cli_fail(CMD, EXIT_USAGE, "--threads expects an integer in [0, 1024], got '%s'", s);
            po.threads = (int)n;
        } else if (cli_opt(a, "--step", &v)) {
            if (!(s = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            char *end;
            double d = strtod(s, &end);
            if (*end || !(d > 0 && d <= 1)) return cli_fail(CMD, EXIT_USAGE, "--step expects a number in (0, 1], got '%s'", s);
            po.step = d;
        } else if (cli_opt(a, "--batch", &v)) {
            if (!(s = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &n) || n < 1 || n > 4096)
                return cli_fail(CMD, EXIT_USAGE, "--batch expects an integer in [1, 4096], got '%s'", s);
            po.batch = n;
        } else if (a[0] == '-') {
            return cli_fail(CMD, EXIT_USAGE, "unknown option '%s' (see segloss predict --help)", a);
        } else {
            return cli_fail(CMD, EXIT_USAGE, "unexpected argument '%s' (see segloss predict --help)", a);
        }
    }
    if (!nmodels || !input || !out)
        return cli_fail(CMD, EXIT_USAGE, "--model, --input and --out are required (see segloss predict --help)");
    if (!known_format(input))
        return cli_fail(CMD, EXIT_USAGE, "'%s': unknown image format (expected .nii, .nii.gz, .npy or .png)", input);
    if (!known_format(out))
        return cli_fail(CMD, EXIT_USAGE, "'%s': unknown image format (expected .nii, .nii.gz, .npy or .png)", out);
    if (pout && sl_format_from_path(pout) != SL_FORMAT_NPY)
        return cli_fail(CMD, EXIT_USAGE, "--probabilities writes a .npy file, got '%s'", pout);
    if (nconfigs && nconfigs != nmodels)
        return cli_fail(CMD, EXIT_USAGE, "--config is given once per --model or not at all (%d models, %d configs)", nmodels,
                        nconfigs);
    if (int8 && nmodels > 1) return cli_fail(CMD, EXIT_USAGE, "--int8 takes one --model (not an ensemble)");
    if (calib && !int8) return cli_fail(CMD, EXIT_USAGE, "--calib is for --int8 (the calibration of an INT8 prediction)");
    if (crf_text && !crf) return cli_fail(CMD, EXIT_USAGE, "--crf-params is for --crf");
    {
        char pm[256];
        if (crf_text && sl_crf_params_parse(crf_text, &cp, pm, sizeof pm) != SL_OK)
            return cli_fail(CMD, EXIT_USAGE, "--crf-params: %s", pm);
        cp.threads = po.threads;
    }
    if (calib && !known_format(calib))
        return cli_fail(CMD, EXIT_USAGE, "'%s': unknown image format (expected .nii, .nii.gz, .npy or .png)", calib);

    char msg[1024], ppath[4096];
    sl_postprocess *rule = NULL;
    static char cpaths[MAX_MODELS][4096];
    sl_unet *nets[MAX_MODELS] = {NULL};
    sl_preproc pps[MAX_MODELS];
    sl_array img = SL_ARRAY_EMPTY, lab = SL_ARRAY_EMPTY, cimg = SL_ARRAY_EMPTY, prob = SL_ARRAY_EMPTY;
    sl_image_info info;
    memset(&info, 0, sizeof info);
    int rc = EXIT_WORK;
    for (int k = 0; k < nmodels; k++) {
        if (!nconfigs) default_config(models[k], cpaths[k], sizeof cpaths[k]);
        if (!load_model(models[k], nconfigs ? configs[k] : cpaths[k], &nets[k], &pps[k])) goto done;
    }
    sl_unet *net = nets[0];
    const char *model = models[0];
    sl_preproc pp = pps[0];
    sl_unet_config uc; /* the models of an ensemble agree on classes and dimensionality */
    sl_unet_get_config(net, &uc);
    /* an ensemble whose models cannot be averaged is a usage error */
    if (nmodels > 1 && sl_ensemble_check(nets, pps, nmodels, msg, sizeof msg) != SL_OK) {
        cli_fail(CMD, EXIT_USAGE, "%s (models counted in the order of --model)", msg);
        rc = EXIT_USAGE;
        goto done;
    }
    if (ppost && strcmp(ppost, "none")) {
        /* the rule before the work: a missing or bad file fails first */
        if (!strcmp(ppost, "auto")) {
            const char *slash = strrchr(model, '/');
            int dl = slash ? (int)(slash - model) : 0;
            if (slash) snprintf(ppath, sizeof ppath, "%.*s/postprocess.json", dl ? dl : 1, dl ? model : "/");
            else snprintf(ppath, sizeof ppath, "postprocess.json");
        } else snprintf(ppath, sizeof ppath, "%s", ppost);
        if (!(rule = malloc(sizeof *rule))) {
            cli_fail(CMD, EXIT_WORK, "out of memory");
            goto done;
        }
        if (sl_postprocess_load(rule, ppath, msg, sizeof msg) != SL_OK) {
            cli_fail(CMD, EXIT_WORK, "--postprocess: %s", msg);
            goto done;
        }
        if (rule->num_classes != uc.num_classes) {
            cli_fail(CMD, EXIT_WORK, "--postprocess: %s is for %d classes but %s has %d", ppath, rule->num_classes, model,
                     uc.num_classes);
            goto done;
        }
    }
    if (!read_image(input, &img, &info)) goto done;
    if (sl_png_path(out) && !(img.ndim == 2 || (img.ndim == 3 && img.shape[0] == 1))) {
        cli_fail(CMD, EXIT_USAGE, "%s: a PNG output needs a 2-D input; %s is 3-D", out, input);
        rc = EXIT_USAGE;
        goto done;
    }
    if (int8) {
        /* float forwards over the calibration image record every
         * convolution's input range; then the net runs in int8 */
        sl_image_info cinfo;
        const sl_array *c = &img;
        if (calib) {
            if (!read_image(calib, &cimg, &cinfo)) goto done;
            c = &cimg;
        }
        sl_predict_opts co = po;
        co.tta = SL_TTA_NONE;
        sl_status cs = sl_unet_calibrate(net);
        if (cs == SL_EUNSUPPORTED) {
            cli_fail(CMD, EXIT_USAGE, "--int8: %s is a 3-D or anisotropic model; only 2-D models are quantised", model);
            rc = EXIT_USAGE;
            goto done;
        }
        if (cs != SL_OK) {
            cli_fail(CMD, EXIT_WORK, "out of memory");
            goto done;
        }
        if (sl_predict_image(net, &pp, c, &co, &lab, msg, sizeof msg) != SL_OK) {
            cli_fail(CMD, EXIT_WORK, "%s: %s", calib ? calib : input, msg);
            goto done;
        }
        sl_array_free(&lab);
        if (sl_unet_quantize(net, msg, sizeof msg) != SL_OK) {
            cli_fail(CMD, EXIT_WORK, "%s", msg);
            goto done;
        }
    }
    sl_status ps = nmodels > 1 ? sl_predict_ensemble(nets, pps, nmodels, &img, &po, &lab, pout || crf ? &prob : NULL, msg, sizeof msg)
                               : sl_predict_image_probs(net, &pp, &img, &po, &lab, pout || crf ? &prob : NULL, msg, sizeof msg);
    if (ps != SL_OK) {
        cli_fail(CMD, EXIT_WORK, "%s: %s", input, msg);
        goto done;
    }
    if (crf) {
        /* the labels become the argmax of the CRF's marginals */
        sl_array_free(&lab);
        if (sl_predict_crf(&pp, uc.spatial_ndim, &img, info.has_spacing ? info.spacing : NULL, &cp, &prob, &lab, msg,
                           sizeof msg) != SL_OK) {
            cli_fail(CMD, EXIT_WORK, "%s: %s", input, msg);
            goto done;
        }
    }
    if (rule && sl_postprocess_apply_array(rule, &lab, msg, sizeof msg) != SL_OK) {
        cli_fail(CMD, EXIT_WORK, "%s: %s", ppath, msg);
        goto done;
    }
    /* the probabilities first: if the labels then fail, they are removed */
    if (pout && sl_image_write(pout, &prob, NULL, NULL, msg, sizeof msg) != SL_OK) {
        cli_fail(CMD, EXIT_WORK, "%s", msg);
        goto done;
    }
    sl_status st;
    if (sl_png_path(out)) {
        if (lab.ndim == 3) { /* (1, H, W) */
            lab.ndim = 2;
            lab.shape[0] = lab.shape[1];
            lab.shape[1] = lab.shape[2];
        }
        st = sl_png_write(out, &lab, msg, sizeof msg);
    } else {
        int nifti_ref = info.format == SL_FORMAT_NIFTI || info.format == SL_FORMAT_NIFTI_GZ;
        st = sl_image_write(out, &lab, NULL, nifti_ref ? &info : NULL, msg, sizeof msg);
    }
    if (st != SL_OK) {
        cli_fail(CMD, EXIT_WORK, "%s", msg);
        if (pout) remove(pout);
        goto done;
    }
    rc = 0;
done:
    free(rule);
    sl_array_free(&prob);
    sl_array_free(&img);
    sl_array_free(&lab);
    sl_array_free(&cimg);
    for (int k = 0; k < nmodels; k++) sl_unet_free(nets[k]);
    return rc;
}
