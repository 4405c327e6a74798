/*
 * The subcommands of the segloss tool. Each lives in its own file
 * (cli/cmd_<name>.c), parses its options into a struct, validates, then
 * acts, and returns the process exit code:
 *   0 success, 1 the work failed, 2 bad usage.
 * Errors are one line on stderr: "segloss <cmd>: <what is wrong>".
 */
#ifndef SL_CLI_COMMANDS_H
#define SL_CLI_COMMANDS_H

int cmd_loss(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_edt(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_fuse(int argc, char **argv);
/* segloss eval --prob (cli/cmd_eval_prob.c), called by cmd_eval */
int cmd_eval_prob(int argc, char **argv);
/* segloss eval --gt R1,R2,... (cli/cmd_eval_raters.c), called by cmd_eval */
struct sl_eval_opts;
int cmd_eval_raters(const struct sl_eval_opts *eo, const char *pred, const char *gtlist, const char *csv,
                    const char *json);
/* segloss eval --froc (cli/cmd_eval_froc.c), called by cmd_eval */
int cmd_eval_froc(int argc, char **argv);
/* The cases of --prob P --gt G (two files, or the NAME.npy of folder P with
 * G's NAME.npy/.nii/.nii.gz), sorted by id; 0, or the exit code after
 * printing the reason (cli/cmd_eval_prob.c). */
typedef struct eval_files {
    char *id, *prob, *gt;
} eval_files;
int eval_prob_files(const char *prob, const char *gt, eval_files **out, int *n);
void eval_prob_files_free(eval_files *f, int n);

#endif
