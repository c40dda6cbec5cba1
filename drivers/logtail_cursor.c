/* logtail_cursor.c — the log tail's cursor: every file's position and fingerprint as JSON,
 * committed with the batch that read up to it, and loaded back after a restart or a failure. */
#include "logtail_priv.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the cursor ---- */

static cJSON *file_json(const struct tfile *f)
{
	char num[32];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "path", f->path);
	snprintf(num, sizeof(num), "%" PRIu64, f->dev);
	cJSON_AddStringToObject(o, "dev", num); /* strings: a 64-bit inode does not fit a double */
	snprintf(num, sizeof(num), "%" PRIu64, f->ino);
	cJSON_AddStringToObject(o, "ino", num);
	snprintf(num, sizeof(num), "%016" PRIx64, f->fp);
	cJSON_AddStringToObject(o, "fp", num);
	snprintf(num, sizeof(num), "%016" PRIx64, f->sum);
	cJSON_AddStringToObject(o, "sum", num);
	cJSON_AddNumberToObject(o, "fp_len", f->fp_len);
	cJSON_AddNumberToObject(o, "off", (double)f->off);
	cJSON_AddNumberToObject(o, "line", (double)f->line);
	if (f->cols.have_header) {
		cJSON_AddNumberToObject(o, "hdr_end", (double)f->hdr_end);
		cJSON *cols = cJSON_AddArrayToObject(o, "cols");
		for (int i = 0; i < SF__COUNT; i++)
			cJSON_AddItemToArray(cols, cJSON_CreateNumber(f->cols.col[i]));
	}
	if (f->skip_nl)
		cJSON_AddTrueToObject(o, "skip_nl");
	if (f->gone)
		cJSON_AddTrueToObject(o, "gone");
	if (f->missing_since)
		cJSON_AddNumberToObject(o, "missing_since", (double)f->missing_since);
	return o;
}

char *lt_cursor_text(struct tail *t, size_t *len)
{
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return NULL;
	cJSON_AddNumberToObject(root, "v", CURSOR_VERSION);
	cJSON_AddNumberToObject(root, "lines", (double)t->lines);
	cJSON_AddNumberToObject(root, "malformed", (double)t->malformed);
	cJSON *files = cJSON_AddArrayToObject(root, "files");
	for (size_t i = 0; i < t->n_files; i++)
		cJSON_AddItemToArray(files, file_json(t->files[i]));
	if (t->pairs)
		cJSON_AddItemToObject(root, "open", lp_pairs_to_json(t->pairs));
	char *text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (text)
		*len = strlen(text);
	return text;
}

static bool u64_of(const cJSON *o, const char *k, int base, uint64_t *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsString(it) || !*it->valuestring)
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(it->valuestring, &end, base);
	if (*end || errno)
		return false;
	*out = v;
	return true;
}

static bool num_of(const cJSON *o, const char *k, int64_t *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	/* Range before the cast: "1e400" parses as inf, and casting it is undefined. */
	if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble <= 9e15))
		return false;
	*out = (int64_t)it->valuedouble;
	return true;
}

static struct tfile *file_from_json(const cJSON *o)
{
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
	if (!cJSON_IsString(path))
		return NULL;
	struct tfile *f = lt_file_new(path->valuestring);
	int64_t fp_len = 0;
	if (!f || !u64_of(o, "dev", 10, &f->dev) || !u64_of(o, "ino", 10, &f->ino) ||
	    !u64_of(o, "fp", 16, &f->fp) || !u64_of(o, "sum", 16, &f->sum) || !num_of(o, "fp_len", &fp_len) || fp_len > FP_MAX ||
	    !num_of(o, "off", &f->off) || !num_of(o, "line", &f->line))
		goto fail;
	f->fp_len = (uint32_t)fp_len;
	const cJSON *cols = cJSON_GetObjectItemCaseSensitive(o, "cols");
	if (cols) {
		if (!cJSON_IsArray(cols) || cJSON_GetArraySize(cols) != SF__COUNT ||
		    !num_of(o, "hdr_end", &f->hdr_end))
			goto fail;
		f->cols.have_header = true;
		for (int i = 0; i < SF__COUNT; i++) {
			const cJSON *c = cJSON_GetArrayItem(cols, i);
			if (!cJSON_IsNumber(c) || c->valueint < -1 || c->valueint >= LP_CSV_MAX_COLS)
				goto fail;
			f->cols.col[i] = c->valueint;
		}
	}
	f->skip_nl = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "skip_nl"));
	f->gone = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "gone"));
	if (cJSON_GetObjectItemCaseSensitive(o, "missing_since") && !num_of(o, "missing_since", &f->missing_since))
		goto fail;
	return f;
fail:
	lt_file_free(f);
	return NULL;
}

void lt_files_free(struct tfile **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lt_file_free(v[i]);
	free(v);
}

/* Replace the in-memory state with the committed cursor text (NULL: a fresh start). Open
 * descriptors of files that are still followed are kept: an inode can't be reused while we
 * hold it open, so device and inode are enough to match them. */
int lt_state_load(struct tail *t, const char *text)
{
	struct tfile **files = NULL;
	size_t n = 0, cap = 0;
	int64_t lines = 0, malformed = 0;
	cJSON *root = NULL;
	const cJSON *open = NULL;

	if (text) {
		root = cJSON_Parse(text);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "files");
		if (!cJSON_IsNumber(v) || v->valueint != CURSOR_VERSION || !cJSON_IsArray(arr) ||
		    !num_of(root, "lines", &lines) || !num_of(root, "malformed", &malformed))
			goto bad;
		const cJSON *e;
		cJSON_ArrayForEach(e, arr) {
			struct tfile *f = file_from_json(e);
			if (!f)
				goto bad;
			if (lt_push((void **)&files, &n, &cap, f) < 0) {
				lt_file_free(f);
				goto bad;
			}
		}
		open = cJSON_GetObjectItemCaseSensitive(root, "open");
	}
	if (t->pairs && lp_pairs_from_json(t->pairs, open) < 0)
		goto bad;
	cJSON_Delete(root);

	for (size_t k = 0; k < 2; k++) {
		struct tfile **old = k ? t->dropped : t->files;
		size_t n_old = k ? t->n_dropped : t->n_files;
		for (size_t i = 0; i < n_old; i++) {
			struct tfile *o = old[i];
			for (size_t j = 0; j < n && o->fd >= 0; j++) {
				struct tfile *f = files[j];
				if (f->fd < 0 && f->dev == o->dev && f->ino == o->ino) {
					f->fd = o->fd;
					o->fd = -1;
				}
			}
		}
		lt_files_free(old, n_old);
	}
	for (size_t j = 0; j < n; j++)
		files[j]->order = j;
	t->files = files;
	t->n_files = n;
	t->cap_files = cap;
	t->dropped = NULL;
	t->n_dropped = t->cap_dropped = 0;
	t->next_order = n;
	t->lines = lines;
	t->malformed = malformed;
	t->dirty = false;
	return 0;
bad:
	cJSON_Delete(root);
	lt_files_free(files, n);
	return -EINVAL;
}
