/* standalone.c — a main for fuzz targets outside libFuzzer: runs each file named (every file of
 * a folder named) through LLVMFuzzerTestOneInput once, so the normal build keeps targets working. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX_BYTES ((size_t)16 << 20)  /* larger than any corpus file; a bigger one is refused */

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "standalone: %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap || cap >= INPUT_MAX_BYTES)
			break;
		uint8_t *nb = realloc(buf, cap * 2);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	int bad = ferror(f) || !buf || n == cap;
	fclose(f);
	if (bad) {
		fprintf(stderr, "standalone: %s: cannot read (or larger than %zu bytes)\n", path, INPUT_MAX_BYTES);
		free(buf);
		return -1;
	}
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int run_dir(const char *path, size_t *count)
{
	DIR *d = opendir(path);
	if (!d) {
		fprintf(stderr, "standalone: %s: %s\n", path, strerror(errno));
		return -1;
	}
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		size_t len = strlen(path) + 1 + strlen(e->d_name) + 1;
		char *file = malloc(len);
		if (!file) {
			rc = -1;
			break;
		}
		snprintf(file, len, "%s/%s", path, e->d_name);
		struct stat st;
		if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
			if (run_file(file) < 0)
				rc = -1;
			else
				(*count)++;
		}
		free(file);
	}
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int rc = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (argv[i][0] == '-')
			continue;  /* libFuzzer options (-runs=…) passed out of habit */
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			rc |= run_dir(argv[i], &count);
		else if (run_file(argv[i]) < 0)
			rc = -1;
		else
			count++;
	}
	fprintf(stderr, "standalone: %zu input(s) run\n", count);
	return rc ? 1 : 0;
}
