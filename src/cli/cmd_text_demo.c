/* selfsup demo --text (placeholder until the report lands). */
#include <stdio.h>

#include "cli/text_cli.h"

int cmd_text_demo(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "selfsup demo --text: not built yet\n");
    return 2;
}
