#include <stdio.h>
int main(void) { puts("selfsup"); return 0; }
