/* status_text.c — the status as an operator reads it (`status`). */
#include "status.h"
#include "timeutil.h"

#include <stdio.h>

/* RFC 3339, or dflt for none. */
static const char *when(int64_t t, char buf[RFC3339_LEN], const char *dflt)
{
	if (t <= 0)
		return dflt;
	time_rfc3339(t, buf);
	return buf;
}

static void print_nrii(const struct status *st, FILE *out)
{
	const struct sink_status *n = &st->nrii;
	const struct nrii_status *p = &st->nrii_parked;
	char t[RFC3339_LEN];
	fprintf(out, "nrii      acked %lld, last ok %s, %lld sent, %lld parked\n", (long long)n->acked_seq,
		when(n->last_ok, t, "never"), (long long)p->sent_count, (long long)p->parked_count);
	if (n->alarm)
		fprintf(out, "          ALARM: %s\n", n->alarm);
	for (size_t i = 0; i < p->n_parked; i++)
		fprintf(out, "          parked seq %lld: %d %s\n", (long long)p->parked[i].seq, p->parked[i].code,
			p->parked[i].text ? p->parked[i].text : "");
	for (size_t i = 0; i < p->n_totals; i++) {
		const struct nrii_parked_total *x = &p->totals[i];
		fprintf(out, "          parked totals %s %d-%02d: %d %s\n", x->instrument ? x->instrument : "?",
			x->year, x->month, x->code, x->text ? x->text : "");
	}
}

void status_text(const struct status *st, FILE *out)
{
	char t1[RFC3339_LEN], t2[RFC3339_LEN];
	fprintf(out, "agent     %s (labshare-agent %s), %s\n", st->agent_id, LABSHARE_VERSION,
		st->running ? "running" : "not running");
	fprintf(out, "buffer    %s: last seq %lld, acked %lld, pending %lld, %.1f MB%s\n",
		st->buffer.path ? st->buffer.path : "?", (long long)st->buffer.last_seq,
		(long long)st->buffer.acked_seq, (long long)st->buffer.pending,
		(double)st->buffer.bytes / 1048576.0, st->buffer.full ? " — FULL: sources paused" : "");
	fprintf(out, "upload    last ok %s, next attempt %s\n", when(st->upload.last_ok, t1, "never"),
		when(st->upload.next_attempt, t2, "now"));
	if (st->upload.last_error)
		fprintf(out, "          last error: %s\n", st->upload.last_error);
	if (st->upload.alarm)
		fprintf(out, "          ALARM: %s\n", st->upload.alarm);
	if (st->has_nrii)
		print_nrii(st, out);
	for (size_t i = 0; i < st->n_insts; i++) {
		const struct inst_status *in = &st->insts[i];
		fprintf(out, "instrument %s (%s)\n", in->id, in->name);
		const struct modbus_status *m = &in->modbus;
		if (m->present && m->power_scale > 0) {
			/* A metered instrument: no run counter, its power and energy as last read. */
			const struct modbus_reading *r = &m->reading;
			char what[96] = "no reading yet";
			if (r->has_power && r->has_energy)
				snprintf(what, sizeof(what), "power %.0f W, energy %.2f kWh%s",
					 r->power_raw * m->power_scale, r->energy_raw * m->energy_scale,
					 m->has_in_use ? (m->in_use ? ", in use" : ", idle") : "");
			fprintf(out, "  meter   %s, last ok %s, %s\n", m->state, when(m->last_ok, t1, "never"), what);
		} else if (m->present) {
			char hours[32] = "unknown";
			if (m->has_run_hours)
				snprintf(hours, sizeof(hours), "%.2f h", m->run_hours_total);
			fprintf(out, "  modbus  %s, last ok %s, run total %s\n", m->state, when(m->last_ok, t1, "never"),
				hours);
		}
		for (size_t j = 0; j < in->n_logs; j++)
			fprintf(out, "  log     %s: %lld lines, %lld malformed\n", in->logs[j].path,
				(long long)in->logs[j].lines, (long long)in->logs[j].malformed);
		if (in->sessions_repeated > 0)
			fprintf(out, "  repeats %lld (the same session seen again, sealed once)\n",
				(long long)in->sessions_repeated);
	}
}
