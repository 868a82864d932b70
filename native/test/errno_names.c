/* Prints "<number> <errno_name(number)>" for 1..255 and which source errno_name uses, for
 * tests/native/test_errors.py (the table fallback must agree with strerrorname_np). */
#include "../src/errors.h"

#include <stdio.h>

int main(void)
{
	int i;
	printf("source %s\n", errno_name_source_is_table() ? "table" : "strerrorname_np");
	for (i = 1; i < 256; i++)
		printf("%d %s\n", i, errno_name(i));
	return 0;
}
