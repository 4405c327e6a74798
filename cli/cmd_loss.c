#include "commands.h"
int cmd_loss(int argc, char **argv) { (void)argc; (void)argv; return 2; }
int cmd_demo(int argc, char **argv) { (void)argc; (void)argv; return 2; }
