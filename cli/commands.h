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

#endif
