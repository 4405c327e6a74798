/*
 * The trainer on tiny phantom runs (32x32, depth 2, width 4, batch 4,
 * 4 steps per epoch): the loss falls; the same seed gives the same
 * trajectory with 1 and 2 threads; a run stopped after 2 epochs and resumed
 * ends with the same model.bin bytes as an uninterrupted 4-epoch run;
 * config.json, log.csv and metrics.json hold what docs/train.md says; a
 * run folder is not overwritten without resume/force; corrupt checkpoints
 * and changed configurations are refused on resume; loss stages and deep
 * supervision run. Seconds in total, also under ASan.
 */
#define _POSIX_C_SOURCE 200809L
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "segloss/train.h"
#include "test_util.h"

static char root[256];

static sl_train_config tiny(void)
{
    sl_train_config c = SL_TRAIN_CONFIG_DEFAULT;
    c.data_opts.height = c.data_opts.width = 32;
    c.data_opts.n_train = 12;
    c.data_opts.n_val = 4;
    c.data_opts.n_test = 4;
    c.depth = 2;
    c.base_width = 4;
    c.epochs = 4;
    c.steps_per_epoch = 4;
    c.batch_size = 4;
    c.lr = 1e-2;
    c.threads = 1;
    c.seed = 7;
    return c;
}

static void set_dir(sl_train_config *c, const char *name)
{
    snprintf(c->out_dir, sizeof c->out_dir, "%s/%s", root, name);
}

static unsigned char *slurp(const char *dir, const char *name, size_t *len)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int exists(const char *dir, const char *name)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

typedef struct counter {
    int steps, epochs, starts, tests;
    int64_t stop_at_step; /* > 0: ask to stop at this global step */
} counter;

static int count_cb(const sl_train_progress *p, void *u)
{
    counter *k = u;
    if (p->event == SL_TRAIN_STEP) k->steps++;
    if (p->event == SL_TRAIN_EPOCH) k->epochs++;
    if (p->event == SL_TRAIN_START) k->starts++;
    if (p->event == SL_TRAIN_TEST) k->tests++;
    return k->stop_at_step > 0 && p->event == SL_TRAIN_STEP && p->global_step == k->stop_at_step;
}

/* log.csv without its last column (seconds) */
static char *csv_without_seconds(const char *text)
{
    char *o = malloc(strlen(text) + 1), *w = o;
    const char *line = text;
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *last = line + len;
        while (last > line && *last != ',') last--;
        memcpy(w, line, (size_t)(last - line));
        w += last - line;
        *w++ = '\n';
        line = nl ? nl + 1 : line + len;
    }
    *w = 0;
    return o;
}

static void test_loss_falls_and_threads(void)
{
    char msg[512];
    sl_train_config c = tiny();
    c.epochs = 6;
    sl_train_result r1 = SL_TRAIN_RESULT_EMPTY, r2 = SL_TRAIN_RESULT_EMPTY;
    counter k = {0};
    sl_status st = sl_train_run(&c, &r1, count_cb, &k, msg, sizeof msg);
    CHECK(st == SL_OK, "tiny run: %s", msg);
    if (st) return;
    CHECK(r1.completed == 1 && r1.nrows == 6 && r1.epochs_done == 6, "completed %d rows %lld", r1.completed,
          (long long)r1.nrows);
    CHECK(k.steps == 24 && k.epochs == 6 && k.starts == 1 && k.tests == 1, "callbacks: %d steps %d epochs", k.steps,
          k.epochs);
    /* the mean of the last two epochs below the first epoch's */
    double first = r1.log[0].loss, last = 0.5 * (r1.log[4].loss + r1.log[5].loss);
    printf("max loss: first epoch %.4f, last two %.4f\n", first, last);
    CHECK(last < 0.95 * first, "loss does not fall: %.4f -> %.4f", first, last);
    CHECK(r1.num_classes == 3 && !strcmp(r1.class_names[1], "large"), "classes");
    CHECK(r1.nterm_cols == 2 && !strcmp(r1.term_cols[0], "dice") && !strcmp(r1.term_cols[1], "ce"), "term columns");
    for (int cl = 1; cl < 3; cl++) {
        const sl_train_class_metrics *m = &r1.test[cl];
        CHECK(m->n_cases == 4, "n_cases %lld", (long long)m->n_cases);
        CHECK(m->dice >= 0 && m->dice <= 1 && m->nsd >= 0 && m->nsd <= 1 && m->hd95 >= 0 &&
                  m->hd95 <= sqrt(2.0) * 32 + 1e-9 && m->recall >= 0 && m->precision >= 0,
              "class %d metrics out of range", cl);
    }

    /* 2 threads: the nn, loss and data modules are thread-count independent */
    c.threads = 2;
    st = sl_train_run(&c, &r2, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK, "2 threads: %s", msg);
    if (st == SL_OK) {
        double md = 0.0;
        for (int64_t e = 0; e < 6; e++) {
            md = fmax(md, fabs(r1.log[e].loss - r2.log[e].loss));
            for (int t = 0; t < r1.nterm_cols; t++) md = fmax(md, fabs(r1.log[e].terms[t] - r2.log[e].terms[t]));
            for (int cl = 1; cl < 3; cl++) md = fmax(md, fabs(r1.log[e].val_dice[cl] - r2.log[e].val_dice[cl]));
        }
        for (int cl = 1; cl < 3; cl++) md = fmax(md, fabs(r1.test[cl].dice - r2.test[cl].dice));
        printf("max |1 thread - 2 threads| over losses, terms, val and test Dice: %.3g\n", md);
        CHECK(md <= 1e-6, "1 vs 2 threads differ by %g (tolerance 1e-6)", md);
    }
    sl_train_result_free(&r1);
    sl_train_result_free(&r2);
    sl_train_result_free(&r2); /* twice: a freed result is empty */
}

static void test_files_and_resume(void)
{
    char msg[512];
    sl_train_config a = tiny(), b = tiny();
    set_dir(&a, "full");
    set_dir(&b, "resumed");
    sl_train_result ra = SL_TRAIN_RESULT_EMPTY, rb = SL_TRAIN_RESULT_EMPTY;
    sl_status st = sl_train_run(&a, &ra, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK, "full run: %s", msg);
    CHECK(exists(a.out_dir, "config.json") && exists(a.out_dir, "log.csv") && exists(a.out_dir, "model.bin") &&
              exists(a.out_dir, "metrics.json") && !exists(a.out_dir, "checkpoint.bin"),
          "files of a complete run");

    /* stop after 2 epochs (as if killed), then resume to 4 */
    b.stop_after = 2;
    st = sl_train_run(&b, &rb, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK && rb.completed == 0 && rb.epochs_done == 2, "stopped run: st %d completed %d done %lld", st,
          rb.completed, (long long)rb.epochs_done);
    CHECK(exists(b.out_dir, "checkpoint.bin") && !exists(b.out_dir, "model.bin") && !exists(b.out_dir, "metrics.json"),
          "a stopped run has a checkpoint and no final files");
    sl_train_result_free(&rb);
    /* without resume or force: refused */
    b.stop_after = 0;
    st = sl_train_run(&b, NULL, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_EBADSTATE && strstr(msg, "unfinished"), "unfinished folder not refused: %d %s", st, msg);
    /* resume with another lr: refused, naming the key */
    b.resume = 1;
    b.lr = 2e-2;
    st = sl_train_run(&b, NULL, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_EBADSTATE && strstr(msg, "optimizer.lr"), "changed config not refused: %d %s", st, msg);
    b.lr = a.lr;
    /* a callback stop mid-epoch 3 (global step 10) loses only that epoch */
    counter k = {0};
    k.stop_at_step = 10;
    st = sl_train_run(&b, &rb, count_cb, &k, msg, sizeof msg);
    CHECK(st == SL_OK && rb.completed == 0 && rb.epochs_done == 2, "callback stop: st %d done %lld (%s)", st,
          (long long)rb.epochs_done, msg);
    sl_train_result_free(&rb);
    /* other threads on resume: allowed (results do not depend on them) */
    b.threads = 2;
    k.stop_at_step = 0;
    k.starts = 0;
    st = sl_train_run(&b, &rb, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK && rb.completed == 1 && rb.nrows == 4, "resume: %s", msg);

    size_t la, lb;
    unsigned char *ma = slurp(a.out_dir, "model.bin", &la), *mb = slurp(b.out_dir, "model.bin", &lb);
    CHECK(ma && mb && la == lb && memcmp(ma, mb, la) == 0, "model.bin of the resumed run differs (%zu vs %zu bytes)", la, lb);
    if (ma && mb && la == lb) printf("max model.bin byte difference after resume: %d\n", memcmp(ma, mb, la) != 0);
    free(ma);
    free(mb);
    /* log.csv identical apart from the timings */
    unsigned char *ca = slurp(a.out_dir, "log.csv", &la), *cb = slurp(b.out_dir, "log.csv", &lb);
    if (ca && cb) {
        char *xa = csv_without_seconds((char *)ca), *xb = csv_without_seconds((char *)cb);
        CHECK(strcmp(xa, xb) == 0, "log.csv differs after resume:\n%s\nvs\n%s", xa, xb);
        /* header and one row per epoch */
        CHECK(strncmp(xa, "epoch,stage,lr,loss,term_dice,term_ce,val_dice_large,val_dice_core", 66) == 0, "log.csv header: %.80s", xa);
        int lines = 0;
        for (char *p = xa; *p; p++) lines += *p == '\n';
        CHECK(lines == 5, "log.csv has %d lines", lines);
        free(xa);
        free(xb);
    } else {
        CHECK(0, "log.csv missing");
    }
    free(ca);
    free(cb);
    for (int cl = 1; cl < 3; cl++)
        CHECK(ra.test[cl].dice == rb.test[cl].dice && ra.test[cl].hd95 == rb.test[cl].hd95, "test metrics differ after resume");

    /* metrics.json */
    unsigned char *mj = slurp(a.out_dir, "metrics.json", &la);
    cJSON *m = mj ? cJSON_Parse((char *)mj) : NULL;
    const cJSON *test = m ? cJSON_GetObjectItem(m, "test") : NULL;
    CHECK(cJSON_IsArray(test) && cJSON_GetArraySize(test) == 2, "metrics.json test array");
    for (int i = 0; test && i < cJSON_GetArraySize(test); i++) {
        const cJSON *e = cJSON_GetArrayItem(test, i);
        static const char *keys[] = {"class", "dice", "hd95", "nsd", "recall", "precision", "n_cases", "n_empty_pred"};
        for (int j = 0; j < 8; j++) CHECK(cJSON_IsNumber(cJSON_GetObjectItem(e, keys[j])), "metrics.json lacks %s", keys[j]);
        CHECK(cJSON_GetObjectItem(e, "class")->valuedouble == i + 1, "class numbers");
        CHECK(fabs(cJSON_GetObjectItem(e, "dice")->valuedouble - ra.test[i + 1].dice) < 1e-12, "dice in metrics.json");
    }
    CHECK(m && cJSON_IsObject(cJSON_GetObjectItem(m, "conventions")), "metrics.json conventions");
    cJSON_Delete(m);
    free(mj);

    /* config.json reproduces the run's configuration and the preprocessing */
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", a.out_dir);
    sl_train_config back;
    st = sl_train_config_load(&back, path, msg, sizeof msg);
    CHECK(st == SL_OK, "config.json: %s", msg);
    char *j1 = NULL, *j2 = NULL;
    sl_train_config_to_json(&a, &j1);
    sl_train_config_to_json(&back, &j2);
    CHECK(j1 && j2 && !strcmp(j1, j2), "config.json does not give back the configuration");
    free(j1);
    free(j2);
    sl_preproc pp;
    int nc;
    st = sl_preproc_load(&pp, &nc, path, msg, sizeof msg);
    CHECK(st == SL_OK && nc == 3 && pp.norm == SL_INTENSITY_ZSCORE && pp.per_slice == 1 && pp.size[0] == 32 && pp.axis == 'z',
          "preprocessing from config.json: %s", msg);

    /* complete folder: refused, resume refused, force replaces */
    st = sl_train_run(&a, NULL, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_EBADSTATE && strstr(msg, "complete"), "complete folder not refused: %d %s", st, msg);
    a.resume = 1;
    st = sl_train_run(&a, NULL, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_EBADSTATE, "resume of a complete run not refused: %d", st);
    a.resume = 0;
    a.force = 1;
    a.epochs = 1;
    st = sl_train_run(&a, NULL, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK, "force: %s", msg);
    sl_train_result_free(&ra);
    sl_train_result_free(&rb);
}

static void test_corrupt_checkpoint(void)
{
    char msg[512];
    sl_train_config c = tiny();
    set_dir(&c, "corrupt");
    c.stop_after = 1;
    sl_status st = sl_train_run(&c, NULL, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK, "run: %s", msg);
    char p[600];
    snprintf(p, sizeof p, "%s/checkpoint.bin", c.out_dir);
    FILE *f = fopen(p, "r+b");
    CHECK(f != NULL, "no checkpoint");
    if (!f) return;
    fseek(f, 200, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 200, SEEK_SET);
    fputc(ch ^ 0x55, f);
    fclose(f);
    c.stop_after = 0;
    c.resume = 1;
    st = sl_train_run(&c, NULL, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_EFORMAT && strstr(msg, "corrupt"), "corrupt checkpoint: %d %s", st, msg);
    /* truncated */
    if (truncate(p, 20) != 0) CHECK(0, "truncate failed");
    st = sl_train_run(&c, NULL, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_EFORMAT, "truncated checkpoint: %d %s", st, msg);
}

static void test_stages_and_deep_supervision(void)
{
    char msg[512];
    sl_train_config c = tiny();
    c.depth = 3;
    c.deep_supervision = 1;
    snprintf(c.loss, sizeof c.loss, "0:ce; 2:dice+ce | ramp(start=0.2,step=0.2)");
    set_dir(&c, "stages");
    c.stop_after = 3;
    sl_train_result r = SL_TRAIN_RESULT_EMPTY;
    sl_status st = sl_train_run(&c, &r, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK && r.epochs_done == 3, "stages + deep supervision: %s", msg);
    sl_train_result_free(&r);
    c.stop_after = 0;
    c.resume = 1;
    st = sl_train_run(&c, &r, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK && r.completed, "resume of stages: %s", msg);
    if (st == SL_OK) {
        CHECK(r.nterm_cols == 2 && !strcmp(r.term_cols[0], "ce") && !strcmp(r.term_cols[1], "dice"), "columns %d", r.nterm_cols);
        CHECK(r.log[0].stage == 0 && r.log[2].stage == 1, "stages in the log");
        CHECK(isnan(r.log[0].terms[1]) && !isnan(r.log[0].terms[0]) && !isnan(r.log[3].terms[1]), "NaN for absent terms");
        /* deep supervision: the logged loss is the weighted total, not the level-0 sum of terms */
        double l0 = r.log[0].terms[0];
        CHECK(fabs(r.log[0].loss - l0) > 1e-6, "deep supervision changes the loss (%.6f vs level-0 %.6f)", r.log[0].loss, l0);
    }
    sl_train_result_free(&r);

    /* an uninterrupted run of the same gives the same model */
    sl_train_config u = c;
    set_dir(&u, "stages_full");
    u.resume = 0;
    st = sl_train_run(&u, NULL, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK, "stages uninterrupted: %s", msg);
    size_t la, lb;
    unsigned char *ma = slurp(c.out_dir, "model.bin", &la), *mb = slurp(u.out_dir, "model.bin", &lb);
    CHECK(ma && mb && la == lb && !memcmp(ma, mb, la), "stages: resumed model differs");
    free(ma);
    free(mb);
}

static void test_config_errors(void)
{
    char msg[512];
    sl_train_config c = tiny();
    snprintf(c.loss, sizeof c.loss, "dcie");
    CHECK(sl_train_config_check(&c, msg, sizeof msg) == SL_EUNKNOWN && strstr(msg, "dcie"), "bad loss: %s", msg);
    c = tiny();
    snprintf(c.augment, sizeof c.augment, "flip,twirl");
    CHECK(sl_train_config_check(&c, msg, sizeof msg) != SL_OK && strstr(msg, "twirl"), "bad augment: %s", msg);
    c = tiny();
    c.patch[0] = 31;
    c.patch[1] = 32;
    CHECK(sl_train_config_check(&c, msg, sizeof msg) == SL_EINVAL && strstr(msg, "multiple"), "bad patch: %s", msg);
    c = tiny();
    snprintf(c.data, sizeof c.data, "mnist");
    CHECK(sl_train_config_check(&c, msg, sizeof msg) == SL_EUNKNOWN, "bad source: %s", msg);
    c = tiny();
    c.resume = 1;
    CHECK(sl_train_config_check(&c, msg, sizeof msg) == SL_EINVAL, "resume without a folder");
    c = tiny();
    snprintf(c.data, sizeof c.data, "colin");
    snprintf(c.data_opts.colin_dir, sizeof c.data_opts.colin_dir, "%s/no_such_dir", root);
    CHECK(sl_train_run(&c, NULL, NULL, NULL, msg, sizeof msg) == SL_EIO && strstr(msg, "mricron-data"), "missing colin: %s", msg);
    /* the JSON reader */
    sl_train_config d;
    CHECK(sl_train_config_parse(&d, "{\"training\": {\"epochs\": 3, \"bogus\": 1}}", msg, sizeof msg) == SL_EUNKNOWN &&
              strstr(msg, "training.bogus"), "unknown key: %s", msg);
    CHECK(sl_train_config_parse(&d, "{\"optimizer\": {\"lr\": \"fast\"}}", msg, sizeof msg) == SL_EFORMAT, "wrong type: %s", msg);
    CHECK(sl_train_config_parse(&d, "{\"data_opts\": {\"ratio\": \"1\"}}", msg, sizeof msg) == SL_OK, "ratio text is the data module's to judge");
    CHECK(sl_train_config_parse(&d, "{\"data_opts\": {\"noise\": 1e9}}", msg, sizeof msg) == SL_ERANGE && strstr(msg, "noise"),
          "data option range: %s", msg);
    CHECK(sl_train_config_parse(&d, "{nope", msg, sizeof msg) == SL_EFORMAT, "bad JSON");
    CHECK(sl_train_config_parse(&d, "{\"training\": {\"seed\": \"18446744073709551615\"}}", msg, sizeof msg) == SL_OK &&
              d.seed == UINT64_MAX, "64-bit seed as a string");
    /* names */
    sl_optim_kind ok;
    CHECK(sl_train_optim_parse("adamw", &ok) == SL_OK && ok == SL_OPTIM_ADAMW && !strcmp(sl_train_optim_name(ok), "adamw"), "optim names");
    CHECK(sl_train_optim_parse("rmsprop", &ok) == SL_EUNKNOWN, "unknown optimizer");
}

static void test_dataset_override(void)
{
    /* a caller's open dataset gives the same run as opening it again */
    char msg[512];
    sl_train_config c = tiny();
    c.epochs = 2;
    sl_dataset *ds = NULL;
    sl_status st = sl_dataset_open(&ds, "phantom", &c.data_opts, msg, sizeof msg);
    CHECK(st == SL_OK, "open: %s", msg);
    sl_train_result r1 = SL_TRAIN_RESULT_EMPTY, r2 = SL_TRAIN_RESULT_EMPTY;
    sl_train_run(&c, &r1, NULL, NULL, msg, sizeof msg);
    c.dataset = ds;
    st = sl_train_run(&c, &r2, NULL, NULL, msg, sizeof msg);
    CHECK(st == SL_OK && r1.nrows == 2 && r2.nrows == 2 && r1.log[1].loss == r2.log[1].loss, "dataset override");
    sl_train_result_free(&r1);
    sl_train_result_free(&r2);
    sl_dataset_free(ds);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/sl_test_train_XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_loss_falls_and_threads();
    test_files_and_resume();
    test_corrupt_checkpoint();
    test_stages_and_deep_supervision();
    test_config_errors();
    test_dataset_override();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return test_report("test_train");
}
