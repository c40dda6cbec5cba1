/* metrics_state.c — what the core keeps per instrument between readings: in memory, indexed
 * like the config's instruments (found by id through a hash), and in mx_state as a compact blob
 * written in the transaction of what it produced; older files' JSON rows read once. */
#include "metrics.h"
#include "metrics_priv.h"
#include "buffer.h"
#include "config.h"
#include "counter.h"
#include "le64.h"
#include "stmt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- per-instrument state ---------------------------------------------------------- */

/* The instrument's slot in memory (cfg->instruments is an array, ic points into it). */
struct inst_mem *mem_of(struct metrics *m, const struct instrument_cfg *ic)
{
	size_t i = (size_t)(ic - m->cfg->instruments);
	if (!m->mem) {
		if (!(m->mem = calloc(m->cfg->n_instruments ? m->cfg->n_instruments : 1, sizeof(*m->mem))))
			return NULL;
		m->n_mem = m->cfg->n_instruments;
	}
	return i < m->n_mem ? &m->mem[i] : NULL;
}

/* The stored form: a version byte, a byte of flags, then 13 little-endian 8-byte values
 * (integers, and doubles by their bits). No parsing per reading, the same on every host.
 * Version 2 appends a meter's state (hysteresis.c); version 1 is read as a meter never seen. */
#define STATE_BLOB_V1 1
#define STATE_BLOB_V1_LEN (2 + 13 * 8)
#define STATE_BLOB_V2 2
#define STATE_BLOB_V2_LEN (STATE_BLOB_V1_LEN + METER_BLOB_LEN)
/* Version 3 appends the open slot's amounts held in memory (flag SF_ACC): slot, run, samples,
 * offline. Versions 1 and 2 are read as none held. */
#define STATE_BLOB_V3 3
#define STATE_BLOB_LEN (STATE_BLOB_V2_LEN + 4 * 8)

enum state_flag {
	SF_RUN_HAVE = 1 << 0, SF_RUN_PENDING = 1 << 1, SF_SMP_HAVE = 1 << 2, SF_SMP_PENDING = 1 << 3,
	SF_IU_KNOWN = 1 << 4, SF_IU = 1 << 5, SF_POLL_OK = 1 << 6, SF_ACC = 1 << 7,
};

static void state_to_blob(const struct inst_state *st, unsigned char out[STATE_BLOB_LEN])
{
	unsigned char *p = out + 2;
	out[0] = STATE_BLOB_V3;
	out[1] = (unsigned char)((st->run.have ? SF_RUN_HAVE : 0) | (st->run.pending ? SF_RUN_PENDING : 0) |
				 (st->smp.have ? SF_SMP_HAVE : 0) | (st->smp.pending ? SF_SMP_PENDING : 0) |
				 (st->iu_known ? SF_IU_KNOWN : 0) | (st->iu ? SF_IU : 0) |
				 (st->poll_ok ? SF_POLL_OK : 0) | (st->acc ? SF_ACC : 0));
	const struct counter_state *c[2] = { &st->run, &st->smp };
	for (int i = 0; i < 2; i++) {
		le64_put_dbl(&p, c[i]->last);
		le64_put_i64(&p, c[i]->last_us);
		le64_put_dbl(&p, c[i]->pend_value);
		le64_put_i64(&p, c[i]->pend_us);
	}
	le64_put_i64(&p, st->iu_us);
	le64_put_i64(&p, st->poll_us);
	le64_put_i64(&p, st->cov);
	le64_put_dbl(&p, st->run_carry);
	le64_put_dbl(&p, st->smp_carry);
	meter_state_to_blob(&st->meter, p);
	p += METER_BLOB_LEN;
	le64_put_i64(&p, st->acc_slot);
	le64_put_dbl(&p, st->acc_run);
	le64_put_dbl(&p, st->acc_smp);
	le64_put_dbl(&p, st->acc_off);
}

static int state_from_blob(const unsigned char *in, size_t len, struct inst_state *st)
{
	if (!(len == STATE_BLOB_V1_LEN && in[0] == STATE_BLOB_V1) &&
	    !(len == STATE_BLOB_V2_LEN && in[0] == STATE_BLOB_V2) &&
	    !(len == STATE_BLOB_LEN && in[0] == STATE_BLOB_V3))
		return -EBADMSG;
	const unsigned char *p = in + 2;
	unsigned f = in[1];
	st->run.have = f & SF_RUN_HAVE;
	st->run.pending = f & SF_RUN_PENDING;
	st->smp.have = f & SF_SMP_HAVE;
	st->smp.pending = f & SF_SMP_PENDING;
	st->iu_known = f & SF_IU_KNOWN;
	st->iu = f & SF_IU;
	st->poll_ok = f & SF_POLL_OK;
	struct counter_state *c[2] = { &st->run, &st->smp };
	for (int i = 0; i < 2; i++) {
		c[i]->last = le64_get_dbl(&p);
		c[i]->last_us = le64_get_i64(&p);
		c[i]->pend_value = le64_get_dbl(&p);
		c[i]->pend_us = le64_get_i64(&p);
	}
	st->iu_us = le64_get_i64(&p);
	st->poll_us = le64_get_i64(&p);
	st->cov = le64_get_i64(&p);
	st->run_carry = le64_get_dbl(&p);
	st->smp_carry = le64_get_dbl(&p);
	if (in[0] >= STATE_BLOB_V2)
		meter_state_from_blob(p, &st->meter);
	if (in[0] >= STATE_BLOB_V3) {
		p += METER_BLOB_LEN;
		st->acc = f & SF_ACC;
		st->acc_slot = le64_get_i64(&p);
		st->acc_run = le64_get_dbl(&p);
		st->acc_smp = le64_get_dbl(&p);
		st->acc_off = le64_get_dbl(&p);
	}
	return 0;
}

/* Buffers written before the state was kept in memory hold it as JSON text; it is read once
 * and written back as a blob at the next save. */
static double jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static bool jbool(const cJSON *o, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* An integer kept as a JSON number; the range is checked before the conversion, so a damaged
 * state gives 0, not undefined behaviour. */
static int64_t jint(const cJSON *o, const char *key)
{
	double v = jnum(o, key);
	return isfinite(v) && v > -9.2e18 && v < 9.2e18 ? (int64_t)v : 0;
}

static void counter_from_json(const cJSON *o, struct counter_state *c)
{
	c->have = jbool(o, "have");
	c->last = jnum(o, "last");
	c->last_us = jint(o, "last_us");
	c->pending = jbool(o, "pending");
	c->pend_value = jnum(o, "pend");
	c->pend_us = jint(o, "pend_us");
}

static int state_from_json(const char *text, struct inst_state *st, int64_t *repeats)
{
	cJSON *o = text ? cJSON_Parse(text) : NULL;
	if (!o)
		return -EBADMSG;
	counter_from_json(cJSON_GetObjectItemCaseSensitive(o, "run"), &st->run);
	counter_from_json(cJSON_GetObjectItemCaseSensitive(o, "smp"), &st->smp);
	st->iu_known = jbool(o, "iu_known");
	st->iu = jbool(o, "iu");
	st->iu_us = jint(o, "iu_us");
	st->poll_us = jint(o, "poll_us");
	st->poll_ok = jbool(o, "poll_ok");
	st->cov = jint(o, "cov");
	st->run_carry = jnum(o, "run_carry");
	st->smp_carry = jnum(o, "smp_carry");
	*repeats = jint(o, "repeats");
	cJSON_Delete(o);
	return 0;
}

/* The stored state of inst (zeros when none), and the repeats an old JSON row still holds:
 * inside a transaction as it stands in it, outside one as committed (on a reader). */
int state_read(struct metrics *m, const char *inst, struct inst_state *st, int64_t *legacy_repeats,
		      bool *stored)
{
	*stored = false;
	memset(st, 0, sizeof(*st));
	*legacy_repeats = 0;
	struct store_stmt *s;
	int r = stmt_read(m->buf, mx_sql[MX_STATE_GET], &s);
	if (r < 0)
		return r;
	stmt_bind_text(s, 1, inst);
	int rc = stmt_step(s);
	if (rc == STMT_DONE) {
		stmt_done(s);
		return 0;
	}
	if (rc != STMT_ROW) {
		r = stmt_error(s, rc, "reading metrics state");
		stmt_done(s);
		return r;
	}
	*stored = true;
	r = stmt_is_blob(s, 0) ?
		state_from_blob(stmt_blob(s, 0), stmt_bytes(s, 0), st) :
		state_from_json(stmt_text(s, 0), st, legacy_repeats);
	stmt_done(s);
	return r;
}

int state_get(struct metrics *m, const struct instrument_cfg *ic, struct inst_state **st)
{
	struct inst_mem *im = mem_of(m, ic);
	if (!im)
		return -ENOMEM;
	if (!im->loaded) {
		int r = state_read(m, ic->id, &im->st, &im->legacy_repeats, &im->stored);
		if (r < 0)
			return r;
		im->loaded = true;
	}
	*st = &im->st;
	return 0;
}

int state_save(struct metrics *m, const struct instrument_cfg *ic)
{
	struct inst_mem *im = mem_of(m, ic);
	if (!im || !im->loaded)
		return -EINVAL;
	unsigned char blob[STATE_BLOB_LEN];
	state_to_blob(&im->st, blob);
	struct store_stmt *s = mx(m, im->stored ? MX_STATE_SET : MX_STATE_PUT);
	stmt_bind_text(s, 1, ic->id);
	stmt_bind_blob(s, 2, blob, sizeof(blob));
	int rc = stmt_step(s);
	bool wrote = rc == STMT_DONE && stmt_changes(s) > 0;
	stmt_reset(s);
	if (rc != STMT_DONE)
		return stmt_error(s, rc, "writing metrics state");
	if (!wrote) { /* the row went (another process pruned it?): insert it again */
		s = mx(m, MX_STATE_PUT);
		stmt_bind_text(s, 1, ic->id);
		stmt_bind_blob(s, 2, blob, sizeof(blob));
		rc = stmt_step(s);
		stmt_reset(s);
		if (rc != STMT_DONE)
			return stmt_error(s, rc, "writing metrics state");
	}
	im->stored = true; /* undone with the transaction: memory is forgotten then */
	if (im->legacy_repeats > 0) {
		s = mx(m, MX_REPEATS_ADD);
		stmt_bind_text(s, 1, ic->id);
		stmt_bind_int64(s, 2, im->legacy_repeats);
		rc = stmt_step(s);
		stmt_reset(s);
		if (rc != STMT_DONE)
			return stmt_error(s, rc, "moving repeats");
		/* Rolled back with the rest: the cache is forgotten then, and read again. */
		im->legacy_repeats = 0;
	}
	return 0;
}

