/* test_report_browser.c — the HTML report end to end in a real browser: data through the real
 * pipeline, `labshare-agent report --format html` run as a program, the file opened from disk
 * by headless Chromium, its screenshot decoded (PNG → zlib → scanlines) and its DOM read back.
 * Also checks that Chinese renders as glyphs, not boxes, with the report's font stack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "core.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "report_html.h"
#include "timeutil.h"

#define H 3600
#define DAY 86400
#define D0 1793548800LL /* 2026-11-02T00:00:00+08:00 */
#define DAYS 14
#define N_INST 3
#define BROWSER_MS 90000 /* a cold start builds the font cache; h_run kills it by PID after this */

struct fx {
	char *dir;
	char *config_path;
	const char *chromium;
	char *out_png, *out_html;   /* kept under the build folder for a human to look at */
};

/* ---- PNG: enough of it to read Chromium's screenshots ------------------------------------ */

struct image {
	uint32_t w, h;
	unsigned char *rgba;
};

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
	int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
	return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* 8-bit grey, RGB or RGBA, not interlaced: what browsers write. 0 or -1. */
static int png_decode(const unsigned char *d, size_t len, struct image *img)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	memset(img, 0, sizeof(*img));
	if (len < 8 || memcmp(d, sig, 8) != 0)
		return -1;
	unsigned char *idat = NULL, *raw = NULL;
	size_t idat_len = 0, off = 8;
	int depth = 0, ctype = -1, interlace = 1, rc = -1;
	while (off + 12 <= len) {
		uint32_t n = be32(d + off);
		const unsigned char *type = d + off + 4, *data = d + off + 8;
		if (n > len - off - 12)
			goto out;
		if (memcmp(type, "IHDR", 4) == 0 && n >= 13) {
			img->w = be32(data);
			img->h = be32(data + 4);
			depth = data[8];
			ctype = data[9];
			interlace = data[12];
		} else if (memcmp(type, "IDAT", 4) == 0) {
			unsigned char *p = realloc(idat, idat_len + n);
			if (!p)
				goto out;
			idat = p;
			memcpy(idat + idat_len, data, n);
			idat_len += n;
		} else if (memcmp(type, "IEND", 4) == 0) {
			break;
		}
		off += 12 + (size_t)n;
	}
	int ch = ctype == 6 ? 4 : ctype == 2 ? 3 : ctype == 0 ? 1 : 0;
	if (depth != 8 || interlace != 0 || ch == 0 || img->w == 0 || img->h == 0 || img->w > 20000 ||
	    img->h > 20000)
		goto out;
	size_t stride = (size_t)img->w * (size_t)ch, want = (stride + 1) * img->h;
	uLongf raw_len = want;
	raw = malloc(want);
	if (!raw || uncompress(raw, &raw_len, idat, idat_len) != Z_OK || raw_len != want)
		goto out;
	/* Undo the per-scanline filters in place; the row above is already plain. */
	for (size_t y = 0; y < img->h; y++) {
		unsigned char *cur = raw + y * (stride + 1) + 1;
		const unsigned char *prev = y ? cur - (stride + 1) : NULL;
		int f = cur[-1];
		for (size_t i = 0; i < stride; i++) {
			int a = i >= (size_t)ch ? cur[i - ch] : 0, b = prev ? prev[i] : 0;
			int c = prev && i >= (size_t)ch ? prev[i - ch] : 0;
			switch (f) {
			case 0: break;
			case 1: cur[i] = (unsigned char)(cur[i] + a); break;
			case 2: cur[i] = (unsigned char)(cur[i] + b); break;
			case 3: cur[i] = (unsigned char)(cur[i] + (a + b) / 2); break;
			case 4: cur[i] = (unsigned char)(cur[i] + paeth(a, b, c)); break;
			default: goto out;
			}
		}
	}
	img->rgba = malloc((size_t)img->w * img->h * 4);
	if (!img->rgba)
		goto out;
	for (size_t y = 0; y < img->h; y++)
		for (size_t x = 0; x < img->w; x++) {
			const unsigned char *s = raw + y * (stride + 1) + 1 + x * (size_t)ch;
			unsigned char *t = img->rgba + (y * img->w + x) * 4;
			t[0] = s[0];
			t[1] = ch >= 3 ? s[1] : s[0];
			t[2] = ch >= 3 ? s[2] : s[0];
			t[3] = ch == 4 ? s[3] : 255;
		}
	rc = 0;
out:
	free(idat);
	free(raw);
	return rc;
}

static void image_load(const char *path, struct image *img)
{
	size_t len = 0;
	char *data = h_read_file(path, &len);
	if (!data)
		fail_msg("no screenshot at \"%s\"", path);
	if (png_decode((const unsigned char *)data, len, img) != 0)
		fail_msg("\"%s\" is not a PNG this test can read", path);
	free(data);
}

/* Pixels within tol of (r, g, b) on every channel. */
static size_t pixels_near(const struct image *img, int r, int g, int b, int tol)
{
	size_t n = 0;
	for (size_t i = 0; i < (size_t)img->w * img->h; i++) {
		const unsigned char *p = img->rgba + i * 4;
		if (abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol)
			n++;
	}
	return n;
}

/* Pixels clearly darker than white: text, rules, bars. */
static size_t ink(const struct image *img)
{
	size_t n = 0;
	for (size_t i = 0; i < (size_t)img->w * img->h; i++) {
		const unsigned char *p = img->rgba + i * 4;
		if (765 - p[0] - p[1] - p[2] > 150)
			n++;
	}
	return n;
}

static bool images_equal(const struct image *a, const struct image *b)
{
	return a->w == b->w && a->h == b->h && memcmp(a->rgba, b->rgba, (size_t)a->w * a->h * 4) == 0;
}

/* ---- the browser ------------------------------------------------------------------------- */

static const char *find_chromium(void)
{
	const char *env = getenv("CHROMIUM");
	if (env && access(env, X_OK) == 0)
		return env;
	static const char *const paths[] = { "/usr/bin/chromium", "/usr/bin/chromium-browser",
					     "/usr/lib/chromium/chromium" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

/* Runs Chromium headless on a file: mode "--screenshot=…" or "--dump-dom". Returns stdout. */
static char *chromium(struct fx *f, const char *mode, const char *html, const char *size, const char *fontconfig)
{
	char *profile = h_path(f->dir, "profile");
	char *udd = h_strdupf("--user-data-dir=%s", profile);
	char *win = h_strdupf("--window-size=%s", size);
	char *url = h_strdupf("file://%s", html);
	char *home = h_strdupf("HOME=%s", f->dir);
	char *cache = h_strdupf("XDG_CACHE_HOME=%s/cache", f->dir);
	char *conf = h_strdupf("XDG_CONFIG_HOME=%s/config", f->dir);
	char *fc = fontconfig ? h_strdupf("FONTCONFIG_FILE=%s", fontconfig) : NULL;
	/* h_run takes char *const[]: the literals are never written to. */
	char *const argv[] = { (char *)f->chromium, (char *)"--headless", (char *)"--no-sandbox",
			       (char *)"--disable-gpu", (char *)"--disable-quic", (char *)"--no-first-run",
			       (char *)"--disable-background-networking", (char *)"--disable-component-update",
			       (char *)"--disable-sync", (char *)"--hide-scrollbars", (char *)"--disable-extensions",
			       udd, win, (char *)mode, url, NULL };
	char *const env[] = { home, cache, conf, fc, NULL };
	char *out = NULL, *err = NULL;
	int rc = h_run(argv, env, &out, &err, BROWSER_MS);
	if (rc != 0)
		fail_msg("chromium %s %s: exit %d: %s", mode, html, rc, err ? err : "");
	free(err);
	h_rmtree(profile); /* a fresh profile each run: nothing carried between pages */
	free(profile);
	free(udd);
	free(win);
	free(url);
	free(home);
	free(cache);
	free(conf);
	free(fc);
	return out;
}

static void screenshot(struct fx *f, const char *html, const char *png, const char *size, const char *fontconfig,
		       struct image *img)
{
	unlink(png);
	char *mode = h_strdupf("--screenshot=%s", png);
	free(chromium(f, mode, html, size, fontconfig));
	free(mode);
	image_load(png, img);
}

/* ---- data through the real pipeline ------------------------------------------------------- */

static void session(struct core *core, const char *inst, int64_t start, int64_t len, const char *user,
		    const char *org, bool manual, bool closed_auto)
{
	struct obs o = { .type = OBS_SESSION, .instrument = inst };
	o.u.session = (struct obs_session){ .start = start, .end = start + len, .user = user, .org = org,
					    .external = -1, .samples = 2, .manual = manual,
					    .closed_auto = closed_auto, .operator_name = "op" };
	assert_int_equal(core_submit(core, &o, 1, NULL, NULL, 0), 0);
}

static void event(struct core *core, const char *inst, int64_t at, const char *type, const char *detail)
{
	struct obs o = { .type = OBS_EVENT, .instrument = inst };
	o.u.event = (struct obs_event){ .at = at, .type = type, .detail = detail };
	assert_int_equal(core_submit(core, &o, 1, NULL, NULL, 0), 0);
}

/* Two weeks of three instruments, working days busier than weekends, a few events. */
static void populate(struct fx *f)
{
	size_t len = 0;
	char *text = h_read_file(f->config_path, &len);
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	if (config_parse(f->config_path, text, len, &cfg, &errs) != 0)
		fail_msg("config: %s", errs.n ? errs.msg[0] : "?");
	free(text);
	timeutil_set_zone("Asia/Shanghai");
	struct fake_clock clock;
	fake_clock_install(&clock, D0 + DAYS * DAY + 300);
	struct buffer *buf = NULL;
	assert_int_equal(buffer_open(cfg->agent.state_dir, 0, &buf, NULL), 0);
	struct core *core = core_new(cfg, buf);
	for (int d = 0; d < DAYS; d++) {
		int64_t day = D0 + (int64_t)d * DAY;
		bool weekend = d % 7 == 5 || d % 7 == 6; /* 2026-11-02 is a Monday */
		int64_t nmr_in = (weekend ? 1 : 3 + d % 3) * H, nmr_out = (weekend ? 0 : 1 + d % 4) * H;
		session(core, "SX-INS-000123", day + 8 * H, nmr_in, "张三", "山西大学", false, false);
		if (nmr_out)
			session(core, "SX-INS-000123", day + 13 * H, nmr_out, "李四", "太原理工大学", false, d == 9);
		if (!weekend)
			session(core, "SX-INS-000456", day + 9 * H, (2 + d % 2) * H, "王五", "山西大学", d == 3, false);
		if (!weekend && d % 3 == 0)
			session(core, "SX-INS-000456", day + 14 * H, 30 * 60, "赵六", "中北大学", false, false);
		if (d % 2 == 0)
			session(core, "SX-INS-000789", day + 10 * H, 5 * H, "钱七", "山西医科大学", false, false);
	}
	event(core, "SX-INS-000123", D0 + 4 * DAY + 20 * H, "device_offline", "modbus: connection timed out");
	event(core, "SX-INS-000123", D0 + 5 * DAY + 7 * H + 40 * 60, "device_online", NULL);
	event(core, "SX-INS-000123", D0 + 6 * DAY + 9 * H, "counter_reset", "run_counter: 81234.5 -> 12.0");
	event(core, "SX-INS-000789", D0 + 9 * DAY + 3 * H, "gap", "agent down 3 h: 2.9 h spread evenly");
	event(core, NULL, D0 + 2 * DAY + 10 * H, "config_changed", "instruments: 2 -> 3");
	assert_true(metrics_tick(core_metrics(core), D0 + DAYS * DAY + 120) >= DAYS);
	core_free(core);
	buffer_close(buf);
	config_free(cfg);
	clock_set(NULL);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	*state = f;
	f->chromium = find_chromium();
	if (!f->chromium)
		return 0;
	f->dir = h_mkdtemp("test_report_browser");
	char *token = h_path(f->dir, "token");
	h_write_file(token, "t\n", (size_t)-1, 0600);
	free(token);
	f->config_path = h_path(f->dir, "agent.json");
	char *text = h_strdupf(
		"{ \"agent\": { \"id\": \"sxu-nmr-center\", \"lab_code\": \"SXKL-2023-017\", \"timezone\": \"Asia/Shanghai\","
		"  \"state_dir\": \"%s/state\", \"internal_orgs\": [\"山西大学\"] },"
		"  \"platform\": { \"url\": \"https://127.0.0.1:9\", \"token_file\": \"%s/token\" },"
		"  \"instruments\": ["
		"   { \"id\": \"SX-INS-000123\", \"name\": \"600 MHz 核磁共振波谱仪\", \"inner_id\": \"2019-0042\","
		"     \"worth_wan\": 560, \"rated_hours\": 1400,"
		"     \"logs\": [ { \"path\": \"/x\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] },"
		"   { \"id\": \"SX-INS-000456\", \"name\": \"场发射扫描电子显微镜 <script>alert(1)</script>\","
		"     \"rated_hours\": 800,"
		"     \"logs\": [ { \"path\": \"/y\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] },"
		"   { \"id\": \"SX-INS-000789\", \"name\": \"液相色谱-质谱联用仪\", \"rated_hours\": 1400,"
		"     \"logs\": [ { \"path\": \"/z\", \"format\": \"csv\", \"fields\": { \"start\": \"s\", \"end\": \"e\" } } ] } ] }",
		f->dir, f->dir);
	h_write_file(f->config_path, text, (size_t)-1, 0644);
	free(text);
	f->out_png = strdup(h_build_path("tests/report_browser.png"));
	f->out_html = strdup(h_build_path("tests/report_browser.html"));
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->dir)
		h_rmtree(f->dir);
	free(f->dir);
	free(f->config_path);
	free(f->out_png);
	free(f->out_html);
	free(f);
	return 0;
}

static void need_chromium(struct fx *f)
{
	if (!f->chromium) {
		print_message("SKIPPED: chromium is not installed; `make deps` installs it "
			      "(apt-get install chromium fonts-wqy-microhei)\n");
		skip();
	}
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void copy_file(const char *from, const char *to)
{
	size_t len = 0;
	char *data = h_read_file(from, &len);
	assert_non_null(data);
	assert_int_equal(h_write_file(to, data, len, 0644), 0);
	free(data);
}

static void test_report_renders_in_chromium(void **state)
{
	struct fx *f = *state;
	need_chromium(f);
	populate(f);
	char *html = h_path(f->dir, "report.html");
	char *agent = strdup(h_build_path("labshare-agent"));
	char *const argv[] = { agent, (char *)"-c", f->config_path, (char *)"report", (char *)"--from",
			       (char *)"2026-11-02", (char *)"--to", (char *)"2026-11-15", (char *)"--format",
			       (char *)"html", (char *)"-o", html, NULL };
	char *out = NULL, *err = NULL;
	int rc = h_run(argv, NULL, &out, &err, 30000);
	if (rc != 0)
		fail_msg("report: exit %d: %s", rc, err);
	free(agent);
	free(out);
	free(err);
	copy_file(html, f->out_html);

	/* The DOM as the browser built it: every chart there, nothing executable. */
	char *dom = chromium(f, "--dump-dom", html, "1280,2000", NULL);
	assert_int_equal(count(dom, "<svg "), 2 + 2 * N_INST);
	assert_int_equal(count(dom, "<section class=\"inst\""), N_INST);
	assert_int_equal(count(dom, "<rect class=\"eff\""), N_INST + DAYS * N_INST);
	assert_null(strcasestr(dom, "<script"));
	assert_null(strcasestr(dom, "<img"));
	assert_null(strcasestr(dom, "<iframe"));
	assert_non_null(strstr(dom, "场发射扫描电子显微镜 &lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_non_null(strstr(dom, "完整 intact"));
	free(dom);

	/* The screenshot: the page's size, not blank, the charts' colours on it. */
	char *png = h_path(f->dir, "report.png");
	struct image img;
	screenshot(f, html, png, "1280,2000", NULL, &img);
	copy_file(png, f->out_png);
	print_message("screenshot: %s (page: %s)\n", f->out_png, f->out_html);
	assert_int_equal(img.w, 1280);
	assert_int_equal(img.h, 2000);
	size_t total = (size_t)img.w * img.h, dark = ink(&img);
	assert_true(dark > total / 100);          /* text and charts, not an empty page */
	assert_true(dark < total / 2);            /* not a black or error page either */
	assert_true(pixels_near(&img, 0x1f, 0x4e, 0x79, 10) > 2000); /* effective-hours bars */
	assert_true(pixels_near(&img, 0xc5, 0x5a, 0x11, 10) > 500);  /* external-hours bars */
	assert_true(pixels_near(&img, 0x2e, 0x7d, 0x5b, 10) > 500);  /* sharing-rate bars */
	free(img.rgba);
	free(png);
	free(html);
}

/* The top or bottom half of an image (rows are whole, so halves are two images of their own). */
static struct image image_half(const struct image *img, int bottom)
{
	struct image h = { img->w, img->h / 2, NULL };
	size_t row = (size_t)img->w * 4;
	h.rgba = malloc(row * h.h);
	memcpy(h.rgba, img->rgba + (bottom ? (size_t)(img->h - h.h) * row : 0), row * h.h);
	return h;
}

/* Both words on one page, one above the other in boxes of the same size, and one screenshot:
 * its two halves are the two words (one browser start, not two). */
static void screenshot_words(struct fx *f, const char *html, const char *png, const char *fontconfig,
			     struct image half[2])
{
	struct image img;
	screenshot(f, html, png, "900,600", fontconfig, &img);
	assert_int_equal(img.h, 600);
	half[0] = image_half(&img, 0);
	half[1] = image_half(&img, 1);
	free(img.rgba);
}

/* Missing glyphs are drawn as one identical box, so two permutations of the same four
 * characters look the same in tofu and different in real glyphs. A control run with only
 * DejaVu (no CJK) shows that the comparison does detect tofu on this machine. */
static void test_cjk_glyphs_not_tofu(void **state)
{
	struct fx *f = *state;
	need_chromium(f);
	static const char *const words[2] = { "有效机时", "时机效有" };
	char *page_path = h_path(f->dir, "cjk.html"), *png = h_path(f->dir, "cjk.png");
	char *page = h_strdupf("<!DOCTYPE html><meta charset=\"utf-8\"><body style=\"margin:0;background:#fff;"
			       "font-family:%s\">"
			       "<div style=\"height:300px;overflow:hidden\"><h1 style=\"font-size:96px;margin:20px\">%s</h1></div>"
			       "<div style=\"height:300px;overflow:hidden\"><h1 style=\"font-size:96px;margin:20px\">%s</h1></div>"
			       "</body>", REPORT_HTML_FONTS, words[0], words[1]);
	h_write_file(page_path, page, (size_t)-1, 0644);
	free(page);
	struct image sys[2], ctl[2];
	screenshot_words(f, page_path, png, NULL, sys);
	for (int i = 0; i < 2; i++)
		assert_true(ink(&sys[i]) > 2000);
	if (images_equal(&sys[0], &sys[1]))
		fail_msg("Chinese renders as boxes (tofu): no CJK font; `make deps` installs fonts-wqy-microhei");

	const char *dejavu = "/usr/share/fonts/truetype/dejavu";
	struct stat st;
	if (stat(dejavu, &st) == 0) {
		char *conf = h_path(f->dir, "fonts-dejavu-only.conf");
		char *xml = h_strdupf("<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n"
				      "<fontconfig><dir>%s</dir><cachedir>%s/fc-cache</cachedir></fontconfig>\n",
				      dejavu, f->dir);
		h_write_file(conf, xml, (size_t)-1, 0644);
		free(xml);
		screenshot_words(f, page_path, png, conf, ctl);
		/* Without a CJK font both words are the same four boxes … */
		assert_true(images_equal(&ctl[0], &ctl[1]));
		/* … and with the system's fonts they are not boxes. */
		assert_false(images_equal(&sys[0], &ctl[0]));
		for (int i = 0; i < 2; i++)
			free(ctl[i].rgba);
		free(conf);
	} else {
		print_message("note: %s missing, tofu control run skipped\n", dejavu);
	}
	for (int i = 0; i < 2; i++)
		free(sys[i].rgba);
	free(page_path);
	free(png);
}

int main(void)
{
	log_set_level(LOG_PRI_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_report_renders_in_chromium, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cjk_glyphs_not_tofu, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
