/* test_upload_env.h — the fixture of the upload tests (test_upload.c, test_upload_daemon.c): a
 * reference platform over real HTTPS with a CA made at test time, a buffer and a core of this
 * process, and the platform's copy read back. Each program includes it once. */
#ifndef LABSHARE_TEST_UPLOAD_ENV_H
#define LABSHARE_TEST_UPLOAD_ENV_H

#define UP_FIX static __attribute__((unused))

struct fx {
	char *dir, *certs;
	struct platfix pl;
	struct config *cfg;
	struct buffer *buf;
	struct core *core;
	FILE *devnull;
	/* flush waits out back-offs and Retry-After on this clock, driven: no real waiting */
	struct fake_clock clock;
	struct h_clockdrive *drive;
};

UP_FIX cJSON *plat_json(struct fx *f, const char *line)
{
	char *reply = platfix_request(&f->pl, line);
	cJSON *o = reply ? cJSON_Parse(reply) : NULL;
	if (!o)
		fail_msg("refplat: \"%s\": %s", line, reply ? reply : "(no reply)");
	free(reply);
	return o;
}

UP_FIX int64_t plat_head(struct fx *f, char hash[HASH_HEX_LEN + 1])
{
	cJSON *h = plat_json(f, "head agent-1");
	int64_t seq = (int64_t)cJSON_GetObjectItem(h, "seq")->valuedouble;
	if (hash)
		snprintf(hash, HASH_HEX_LEN + 1, "%s", cJSON_GetObjectItem(h, "hash")->valuestring);
	cJSON_Delete(h);
	return seq;
}

UP_FIX void load_config(struct fx *f, const char *extra_platform)
{
	char *platform = platfix_config(&f->pl);
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"agent-1\", \"lab_code\": \"SXKL-1\", \"timezone\": \"Asia/Shanghai\","
		"    \"state_dir\": \"%s/state\", \"internal_orgs\": [\"山西大学\"] },"
		"  \"platform\": { %s, \"upload_interval_s\": 1, \"batch_max_records\": 500,"
		"    \"timeout_s\": 5 %s },"
		"  \"instruments\": [ { \"id\": \"NMR\", \"logs\": [ { \"path\": \"/x\", \"format\": \"csv\","
		"    \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }",
		f->dir, platform, extra_platform ? extra_platform : "");
	free(platform);
	char *path = h_path(f->dir, "agent.json");
	h_write_file(path, text, (size_t)-1, 0644);
	struct config_errors errs = { 0 };
	struct config *old = f->cfg;
	if (config_load(path, &f->cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	if (f->core)
		core_set_config(f->core, f->cfg);
	config_free(old);
	free(text);
	free(path);
}

UP_FIX int setup_common(void **state, bool mtls)
{
	struct fx *f = calloc(1, sizeof(*f));
	fake_clock_install(&f->clock, clock_wall()); /* from now on, so sealed sessions stay past */
	f->drive = h_clockdrive_start(&f->clock);
	assert_non_null(f->drive);
	f->dir = platfix_folder("test_upload", &f->certs);
	assert_non_null(f->dir);
	f->pl.mtls = mtls;
	assert_int_equal(platfix_start(&f->pl, f->dir, f->certs), 0);
	char *extra = mtls ? h_strdupf(", \"client_cert\": \"%s/client.pem\", \"client_key\": \"%s/client.key\"",
				       f->certs, f->certs) : NULL;
	load_config(f, extra);
	free(extra);
	timeutil_set_zone("Asia/Shanghai");
	assert_int_equal(buffer_open(f->cfg->agent.state_dir, 0, &f->buf, NULL), 0);
	f->core = core_new(f->cfg, f->buf);
	f->devnull = fopen("/dev/null", "w");
	*state = f;
	return 0;
}

UP_FIX int setup(void **state) { return setup_common(state, false); }
UP_FIX int setup_mtls(void **state) { return setup_common(state, true); }

UP_FIX int teardown(void **state)
{
	struct fx *f = *state;
	core_free(f->core);
	buffer_close(f->buf);
	config_free(f->cfg);
	platfix_free(&f->pl);
	h_clockdrive_stop(f->drive);
	clock_set(NULL);
	fclose(f->devnull);
	h_done_dir(f->dir);
	free(f->certs);
	free(f);
	return 0;
}

UP_FIX void seal_sessions(struct fx *f, int n)
{
	/* Every call new sessions (the same one twice is sealed once, SPEC §3), all in the past
	 * of the real clock (one ahead of it by more than 24 h is refused): 2 minutes apart
	 * from 2026-11-02 08:00 +08:00 on. */
	static int next;
	for (int k = 0; k < n; k++) {
		int i = next++;
		struct obs o = { .type = OBS_SESSION, .instrument = "NMR" };
		char user[32];
		snprintf(user, sizeof(user), "user-%d", i);
		o.u.session = (struct obs_session){ .start = 1793577600 + i * 120, .end = 1793577600 + i * 120 + 60,
						    .user = user, .org = i % 2 ? "太原理工大学" : "山西大学",
						    .external = -1, .samples = i % 5 };
		assert_int_equal(core_submit(f->core, &o, 1, NULL, NULL, 0), 0);
	}
}

UP_FIX int64_t acked(struct fx *f)
{
	struct sink_state st;
	buffer_sink_get(f->buf, "platform", &st);
	int64_t a = st.acked_seq;
	buffer_sink_clear(&st);
	return a;
}

UP_FIX char *last_error(struct fx *f)
{
	struct sink_state st;
	buffer_sink_get(f->buf, "platform", &st);
	char *e = st.last_error ? strdup(st.last_error) : (st.alarm ? strdup(st.alarm) : NULL);
	buffer_sink_clear(&st);
	return e;
}

UP_FIX void assert_platform_matches(struct fx *f)
{
	struct chain_head h;
	buffer_head(f->buf, &h);
	char hash[HASH_HEX_LEN + 1];
	assert_int_equal(plat_head(f, hash), h.seq);
	assert_string_equal(hash, h.hash);
}

#endif
