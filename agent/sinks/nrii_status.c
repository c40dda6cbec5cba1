/* nrii_status.c — the NRII sink's part of the status (SPEC §8): what the platform parked and
 * how much was sent, read from the sink's own tables. */
#include "nrii.h"
#include "buffer.h"
#include "schema.h"
#include "stmt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void nrii_status_clear(struct nrii_status *ns)
{
	for (size_t i = 0; i < ns->n_parked; i++)
		free(ns->parked[i].text);
	for (size_t i = 0; i < ns->n_totals; i++) {
		free(ns->totals[i].instrument);
		free(ns->totals[i].text);
	}
	free(ns->parked);
	free(ns->totals);
	memset(ns, 0, sizeof(*ns));
}

static char *col_text(struct store_stmt *s, int col)
{
	const char *t = stmt_text(s, col);
	return strdup(t ? t : "");
}

/* Grows *v (elements of size sz) to hold one more; false when out of memory. */
static bool grow(void **v, size_t n, size_t *cap, size_t sz)
{
	if (n < *cap)
		return true;
	size_t c = *cap ? *cap * 2 : 16;
	void *q = realloc(*v, c * sz);
	if (!q)
		return false;
	*v = q;
	*cap = c;
	return true;
}

/* Read here, not with the sink's statements: status runs without a sink, on a buffer that may
 * be opened read-only by another process; on a reader, one snapshot. Every parked entry is
 * listed: the counts say how many, the lists say which, and an operator fixing the config
 * needs all of them. */
int nrii_status_get(struct buffer *b, struct nrii_status *ns)
{
	static const char *const sql[] = {
		"SELECT seq, code, text FROM nrii_records WHERE state = 'parked' ORDER BY seq",
		"SELECT instrument, year, month, code, text FROM nrii_totals WHERE state = 'parked'"
		" ORDER BY year, month, instrument",
		"SELECT (SELECT COUNT(*) FROM nrii_records WHERE state = 'parked')"
		" + (SELECT COUNT(*) FROM nrii_totals WHERE state = 'parked'),"
		" (SELECT COUNT(*) FROM nrii_records WHERE state = 'sent')",
	};
	nrii_status_clear(ns);
	if (!b)
		return 0;
	/* A file where the sink never ran has no tables of it: nothing parked, nothing sent. */
	int r = buffer_schema(b, &nrii_schema);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if ((r = buffer_read_begin(b)) < 0)
		return r;
	size_t cap_p = 0, cap_t = 0;
	struct store_stmt *s[3] = { NULL, NULL, NULL };
	bool ok = true;
	for (int i = 0; i < 3 && ok; i++)
		ok = stmt_read(b, sql[i], &s[i]) == 0;
	while (ok && stmt_step(s[0]) == STMT_ROW) {
		if (!(ok = grow((void **)&ns->parked, ns->n_parked, &cap_p, sizeof(*ns->parked))))
			break;
		struct nrii_parked *e = &ns->parked[ns->n_parked++];
		e->seq = stmt_int64(s[0], 0);
		e->code = stmt_int(s[0], 1);
		e->text = col_text(s[0], 2);
	}
	while (ok && stmt_step(s[1]) == STMT_ROW) {
		if (!(ok = grow((void **)&ns->totals, ns->n_totals, &cap_t, sizeof(*ns->totals))))
			break;
		struct nrii_parked_total *e = &ns->totals[ns->n_totals++];
		e->instrument = col_text(s[1], 0);
		e->year = stmt_int(s[1], 1);
		e->month = stmt_int(s[1], 2);
		e->code = stmt_int(s[1], 3);
		e->text = col_text(s[1], 4);
	}
	if (ok && stmt_step(s[2]) == STMT_ROW) {
		ns->parked_count = stmt_int64(s[2], 0);
		ns->sent_count = stmt_int64(s[2], 1);
	}
	if (!ok)
		r = -EIO;
	for (int i = 0; i < 3; i++)
		stmt_done(s[i]);
	buffer_read_end(b);
	return r;
}
