/* test_modbus_env.h — the fixture of the Modbus driver's tests (test_modbus.c,
 * test_modbus_poll.c): the simulator on 127.0.0.1, a configuration of four instruments on two
 * gateways, a real buffer and core, the driver under the real or a fake clock, and waits on
 * what was sealed. Each program includes it once and uses what it needs. */
#ifndef LABSHARE_TEST_MODBUS_ENV_H
#define LABSHARE_TEST_MODBUS_ENV_H

#define MB_FIX static __attribute__((unused))

/* The wall clock stepped (NTP, an operator): every CLOCK_REALTIME read in this process is
 * off by the step, as after a real one, while the kernel's timed waits keep the true time.
 * Zero except in test_wall_clock_step_does_not_stall_polling. */
static _Atomic long realtime_step_s;

int clock_gettime(clockid_t id, struct timespec *ts)
{
	int r = (int)syscall(SYS_clock_gettime, id, ts);
	if (r == 0 && id == CLOCK_REALTIME)
		ts->tv_sec += atomic_load(&realtime_step_s);
	return r;
}

struct fx {
	char *dir;
	struct h_proc *sim;
	int port[2];
	struct config *cfg;
	struct buffer *buf;
	struct core *core;
	struct source_conf *sc;  /* the driver's part of cfg */
	void *drv;
	char *extra;             /* extra instruments JSON */
	struct fake_clock clock; /* fake_start(): the driver's time, moved by tick() */
	bool fake;
	const char *counter;     /* "E U TABLE ADDR TYPE ORDER" that tick() moves on 1 per second */
};

MB_FIX void sim_cmd(struct fx *f, const char *fmt, ...) PRINTF_LIKE(2, 3);
MB_FIX void sim_cmd(struct fx *f, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char *reply = h_request(f->sim, line, 5000);
	if (!reply || strncmp(reply, "error", 5) == 0)
		fail_msg("simulator: \"%s\": %s", line, reply ? reply : "(no reply)");
	free(reply);
}

MB_FIX void start_sim(struct fx *f)
{
	char *pf = h_path(f->dir, "ports");
	char *argv[] = { (char *)h_build_path("modbus-sim"), (char *)"--tcp", (char *)"127.0.0.1:0",
			 (char *)"--units", (char *)"1-5", (char *)"--tcp", (char *)"127.0.0.1:0",
			 (char *)"--units", (char *)"1", (char *)"--port-file", pf, NULL };
	char *log = h_path(f->dir, "sim.log");
	f->sim = h_spawn(argv, NULL, true, true, log);
	assert_non_null(f->sim);
	assert_true(h_wait_file(pf, 10000));
	char *ports = h_read_file(pf, NULL);
	assert_int_equal(sscanf(ports, "%d %d", &f->port[0], &f->port[1]), 2);
	free(ports);
	free(pf);
	free(log);
}

#define INST_FMT \
	"{ \"agent\": { \"id\": \"t\", \"lab_code\": \"L\", \"timezone\": \"Asia/Shanghai\", \"state_dir\": \"%s/state\" }," \
	"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" }," \
	"  \"buses\": [ { \"id\": \"gw\", \"url\": \"tcp://127.0.0.1:%d\", \"timeout_ms\": 200 }," \
	"               { \"id\": \"gw2\", \"url\": \"tcp://127.0.0.1:%d\", \"timeout_ms\": 200 } ]," \
	"  \"instruments\": [" \
	"   { \"id\": \"A\", \"modbus\": { \"bus\": \"gw\", \"unit\": 1, \"interval_s\": 1," \
	"      \"run_counter\": { \"table\": \"input\", \"address\": 10, \"type\": \"u32\", \"word_order\": \"little\", \"scale\": 0.000277777777777778 }," \
	"      \"samples_counter\": { \"table\": \"input\", \"address\": 12, \"type\": \"u16\" }," \
	"      \"in_use\": { \"table\": \"coil\", \"address\": 3 } } }," \
	"   { \"id\": \"B\", \"modbus\": { \"bus\": \"gw\", \"unit\": 2, \"interval_s\": 1," \
	"      \"run_counter\": { \"table\": \"holding\", \"address\": 0, \"type\": \"u16\", \"scale\": 0.000277777777777778 } } }," \
	"   { \"id\": \"C\", \"modbus\": { \"bus\": \"gw\", \"unit\": 3, \"interval_s\": 1," \
	"      \"run_counter\": { \"table\": \"holding\", \"address\": 0, \"type\": \"u64\", \"scale\": 0.01 }," \
	"      \"in_use\": { \"table\": \"input\", \"address\": 20, \"type\": \"f32\", \"above\": 50 } } }," \
	"   { \"id\": \"D\", \"modbus\": { \"bus\": \"gw2\", \"unit\": 1, \"interval_s\": 1," \
	"      \"run_counter\": { \"table\": \"input\", \"address\": 0, \"type\": \"i32\", \"scale\": 0.000277777777777778 } } }" \
	"  ] }"

/* The lab's config from text (freed here), its buffer and core: what every setup ends with. */
MB_FIX void open_lab(struct fx *f, char *text)
{
	struct config_errors errs = { 0 };
	if (config_parse("t.json", text, strlen(text), &f->cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	free(text);
	timeutil_set_zone("Asia/Shanghai");
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	f->core = core_new(f->cfg, f->buf);
}

/* Requests the simulator's endpoint served to unit (its `stats`). */
MB_FIX int64_t unit_requests(struct fx *f, int endpoint, int unit)
{
	char *stats = h_request(f->sim, "stats", 5000);
	cJSON *s = stats ? cJSON_Parse(stats) : NULL;
	free(stats);
	char e[8], u[8];
	snprintf(e, sizeof(e), "%d", endpoint);
	snprintf(u, sizeof(u), "%d", unit);
	const cJSON *n = cJSON_GetObjectItem(
		cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "endpoints"), e), "units"), u);
	int64_t v = cJSON_IsNumber(n) ? (int64_t)n->valuedouble : 0;
	cJSON_Delete(s);
	return v;
}

MB_FIX int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = h_mkdtemp("test_modbus");
	char *token = h_path(f->dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	start_sim(f);
	open_lab(f, h_strdupf(INST_FMT, f->dir, f->dir, f->port[0], f->port[1]));
	*state = f;
	return 0;
}

MB_FIX void start_driver(struct fx *f)
{
	if (!f->sc)
		assert_non_null(f->sc = config_source_conf(f->cfg));
	assert_int_equal(modbus_source.create(f->sc, f->core, &f->drv), 0);
	assert_non_null(f->drv);
	assert_int_equal(modbus_source.start(f->drv), 0);
}

MB_FIX int teardown(void **state)
{
	struct fx *f = *state;
	if (f->drv) {
		modbus_source.stop(f->drv);
		modbus_source.destroy(f->drv);
	}
	if (f->fake)
		clock_set(NULL);
	atomic_store(&realtime_step_s, 0);
	core_free(f->core);
	buffer_close(f->buf);
	source_conf_free(f->sc);
	config_free(f->cfg);
	h_proc_free(f->sim);
	h_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

MB_FIX const struct instrument_cfg *inst(struct fx *f, const char *id)
{
	return config_instrument(f->cfg, id);
}

/* ---- a fake clock that the test moves on -------------------------------------------- */

/* The driver's time stands still until tick(): a poll interval or a back-off is one call,
 * not a second of real time. Network time-outs stay real (the simulator is a real peer). */
MB_FIX void fake_start(struct fx *f)
{
	fake_clock_install(&f->clock, (int64_t)time(NULL));
	f->fake = true;
}

MB_FIX bool driver_settled(void *arg)
{
	return modbus_settled(arg);
}

MB_FIX void settle(struct fx *f)
{
	if (!h_wait_for(driver_settled, f->drv, 15000))
		fail_msg("the driver did not finish the polls due by now");
}

/* One second on: the simulated counter (if any) counts it, the driver polls what is due
 * and hands the readings to the core. */
MB_FIX void tick(struct fx *f)
{
	if (f->counter)
		sim_cmd(f, "add %s 1", f->counter);
	fake_clock_advance(&f->clock, 1000000);
	settle(f);
}

/* Seconds of fake time until cond holds (at most max_s). */
MB_FIX bool tick_until(struct fx *f, bool (*cond)(void *), void *arg, int max_s)
{
	for (int i = 0; i < max_s; i++) {
		if (cond(arg))
			return true;
		tick(f);
	}
	return cond(arg);
}

MB_FIX void start_faked(struct fx *f)
{
	fake_start(f);
	start_driver(f);
	settle(f);
}


struct rec_wait {
	struct fx *f;
	const char *needle;
	int count;
};

MB_FIX int count_records(struct fx *f, const char *needle)
{
	int n = 0;
	struct chain_head h;
	buffer_head(f->buf, &h);
	for (int64_t s = 1; s <= h.seq; s++) {
		struct stored_record r;
		if (buffer_get_record(f->buf, s, &r) == 0 && strstr(r.line, needle))
			n++;
		buffer_record_clear(&r);
	}
	return n;
}

MB_FIX bool have_records(void *arg)
{
	struct rec_wait *w = arg;
	return count_records(w->f, w->needle) >= w->count;
}

MB_FIX void dump_events(struct fx *f)
{
	struct chain_head h;
	buffer_head(f->buf, &h);
	for (int64_t s = 1; s <= h.seq; s++) {
		struct stored_record r;
		if (buffer_get_record(f->buf, s, &r) == 0 && strstr(r.line, "\"kind\":\"event\""))
			fprintf(stderr, "  %s\n", r.line);
		buffer_record_clear(&r);
	}
}

MB_FIX double run_hours(struct fx *f, const char *id)
{
	return metrics_run_hours_total(core_metrics(f->core), id);
}

struct hours_wait {
	struct fx *f;
	const char *id;
	double want;
};

MB_FIX bool hours_reached(void *arg)
{
	struct hours_wait *w = arg;
	return run_hours(w->f, w->id) >= w->want;
}

MB_FIX void wait_hours(struct fx *f, const char *id, double want)
{
	struct hours_wait w = { f, id, want };
	if (!h_wait_for(hours_reached, &w, 10000))
		fail_msg("\"%s\" never read %.4f h (has %.4f)", id, want, run_hours(f, id));
}

/* The same under the fake clock: within max_s seconds of it. */
MB_FIX void tick_records(struct fx *f, const char *needle, int count, int max_s)
{
	struct rec_wait w = { f, needle, count };
	if (!tick_until(f, have_records, &w, max_s) && (dump_events(f), true))
		fail_msg("no %d records with %s within %d s (have %d)", count, needle, max_s,
			 count_records(f, needle));
}

MB_FIX void tick_hours(struct fx *f, const char *id, double want, int max_s)
{
	struct hours_wait w = { f, id, want };
	if (!tick_until(f, hours_reached, &w, max_s))
		fail_msg("\"%s\" never read %.4f h within %d s (has %.4f)", id, want, max_s, run_hours(f, id));
}

/* The driver's status of one instrument, as `status` would show it (numbers only). */
MB_FIX struct modbus_status inst_status(struct fx *f, const char *id)
{
	struct status *st = status_new(f->cfg);
	assert_non_null(st);
	modbus_source.status(f->drv, st->insts, st->n_insts);
	struct modbus_status out = { 0 };
	for (size_t i = 0; i < st->n_insts; i++)
		if (strcmp(st->insts[i].id, id) == 0)
			out = st->insts[i].modbus;
	/* the strings belong to st: keep only what the tests look at */
	out.last_error = NULL;
	out.bus = NULL;
	out.reading.error = NULL;
	status_free(st);
	return out;
}

#endif
