/* The text commands (cmd_text.c, cmd_text_demo.c). */
#ifndef SS_CLI_TEXT_CLI_H
#define SS_CLI_TEXT_CLI_H

/* Whether argv holds --text (or --text=...): main.c then calls cmd_text. */
int text_flag_given(int argc, char **argv);
/* pretrain / train / finetune / probe / eval / robustness / demo with --text. */
int cmd_text(const char *cmd, int argc, char **argv);
/* selfsup demo --text. */
int cmd_text_demo(int argc, char **argv);
#endif
