/* refplat.c — the reference platform's main: options, TLS context, the listening sockets (HTTPS,
 * and plain HTTP for the NRII endpoints that often run so), one thread per connection, signals and
 * a clean stop. The protocols themselves are in feeds.c and nrii.c. */
#include "refplat.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#define EX_USAGE_ 64
#define IDLE_TIMEOUT_S 300   /* an agent keeps its connection between uploads (60 s by default) */
#define SEND_TIMEOUT_S 30
#define STOP_GRACE_MS  5000

struct rp_conn {
	struct rp_server *srv;
	int fd;
	bool plain;                   /* accepted on --listen-http: no TLS */
	unsigned long id;
	struct rp_conn *next, *prev;
};

static FILE *log_file;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void rp_log(const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld refplat: ", tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000);
	if (n < 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	pthread_mutex_lock(&log_mu);
	FILE *f = log_file ? log_file : stderr;
	fprintf(f, "%s\n", line); /* cut at sizeof(line) on purpose: a log line has a cap too */
	fflush(f);
	pthread_mutex_unlock(&log_mu);
}

int64_t rp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rp_wait_ms(struct rp_server *srv, int ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&srv->mu);
	while (!srv->stopping) {
		int r = pthread_cond_timedwait(&srv->cv, &srv->mu, &until);
		if (r == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&srv->mu);
}

void rp_request_stop(void)
{
	kill(getpid(), SIGUSR1);
}

/* ---- options ---- */

struct options {
	const char *listen, *listen_http, *port_file, *cert, *key, *client_ca, *db, *log;
	const char *tokens[RP_TOKENS_MAX];
	size_t ntokens;
	const char *ins_codes[RP_INS_CODES_MAX];
	size_t nins_codes;
};

static void usage(FILE *f)
{
	fputs("usage: refplat --listen HOST:PORT --cert server.pem --key server.key --db store.db\n"
	      "               --token TOKEN [--token TOKEN2 ...] [--port-file F] [--client-ca ca.pem]\n"
	      "               [--log FILE] [--listen-http HOST:PORT] [--ins-code CODE ...]\n"
	      "control on stdin, one command a line: see tests/refplat/README.md\n", f);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "listen-http", required_argument, NULL, 'H' },
		{ "ins-code", required_argument, NULL, 'i' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "client-ca", required_argument, NULL, 'a' },
		{ "db", required_argument, NULL, 'd' },
		{ "token", required_argument, NULL, 't' },
		{ "log", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 'H': o->listen_http = optarg; break;
		case 'i':
			if (o->nins_codes == RP_INS_CODES_MAX || !*optarg || strlen(optarg) >= RP_INS_CODE_LEN) {
				fprintf(stderr, "refplat: --ins-code: at most %d, each 1..%d bytes\n", RP_INS_CODES_MAX,
					RP_INS_CODE_LEN - 1);
				return -1;
			}
			o->ins_codes[o->nins_codes++] = optarg;
			break;
		case 'p': o->port_file = optarg; break;
		case 'c': o->cert = optarg; break;
		case 'k': o->key = optarg; break;
		case 'a': o->client_ca = optarg; break;
		case 'd': o->db = optarg; break;
		case 'L': o->log = optarg; break;
		case 't':
			if (o->ntokens == RP_TOKENS_MAX) {
				fprintf(stderr, "refplat: too many --token (at most %d)\n", RP_TOKENS_MAX);
				return -1;
			}
			if (!*optarg || strlen(optarg) >= RP_TOKEN_LEN) {
				fprintf(stderr, "refplat: --token: must be 1..%d bytes\n", RP_TOKEN_LEN - 1);
				return -1;
			}
			o->tokens[o->ntokens++] = optarg;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "refplat: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!o->listen || !o->cert || !o->key || !o->db || o->ntokens == 0) {
		fprintf(stderr, "refplat: --listen, --cert, --key, --db and --token are required\n");
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ---- TLS ---- */

static void log_ssl_errors(const char *what)
{
	unsigned long e;
	char buf[256];
	bool any = false;
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		rp_log("%s: %s", what, buf);
		any = true;
	}
	if (!any)
		rp_log("%s", what);
}

/* Pick http/1.1 when the client offers ALPN: this server speaks nothing else (no h2). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	(void)ssl; (void)arg;
	static const unsigned char h11[] = "\x08http/1.1";
	unsigned char *sel = NULL;
	if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *tls_setup(const struct options *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1) {
		log_ssl_errors("cannot load --cert");
		goto fail_logged;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		log_ssl_errors("cannot load --key");
		goto fail_logged;
	}
	/* Needed for session resumption once client certificates are verified. */
	static const unsigned char sid_ctx[] = "refplat";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	if (o->client_ca) {
		if (SSL_CTX_load_verify_locations(ctx, o->client_ca, NULL) != 1) {
			log_ssl_errors("cannot load --client-ca");
			goto fail_logged;
		}
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	return ctx;
fail:
	log_ssl_errors("cannot set up tls");
fail_logged:
	SSL_CTX_free(ctx);
	return NULL;
}

/* ---- listening ---- */

/* "127.0.0.1:0", "[::1]:8443", "localhost:0" → host and port strings. */
static int split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *h, *he, *p;
	if (*s == '[') {
		h = s + 1;
		he = strchr(h, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		p = he + 2;
	} else {
		he = strrchr(s, ':');
		if (!he)
			return -EINVAL;
		h = s;
		p = he + 1;
	}
	size_t hl = (size_t)(he - h), pl = strlen(p);
	if (hl == 0 || hl >= hostlen || pl == 0 || pl >= portlen || strspn(p, "0123456789") != pl)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memcpy(port, p, pl + 1);
	return 0;
}

static int listen_on(const char *spec, int *port_out)
{
	char host[256], port[16];
	if (split_hostport(spec, host, sizeof(host), port, sizeof(port)) < 0) {
		rp_log("--listen '%s': expected HOST:PORT or [V6ADDR]:PORT", spec);
		return -EINVAL;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	int r = getaddrinfo(host, port, &hints, &res);
	if (r != 0) {
		rp_log("--listen '%s': %s", spec, gai_strerror(r));
		return -EINVAL;
	}
	int fd = -1, err = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		int one = 1;
		/* A restart on the same port (an outage in a test) must not wait out TIME_WAIT. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		rp_log("cannot listen on '%s': %s", spec, strerror(err));
		return -err;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		close(fd);
		return -errno;
	}
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						    : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* Temp file + rename, so a test waiting for the file never reads half a number. The HTTPS port,
 * then the plain-HTTP one on a second line when there is one. */
static int write_port_file(const char *path, int port, int http_port)
{
	char tmp[4096], text[32];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int m = http_port > 0 ? snprintf(text, sizeof(text), "%d\n%d\n", port, http_port)
			      : snprintf(text, sizeof(text), "%d\n", port);
	if (n < 0 || (size_t)n >= sizeof(tmp) || m < 0 || (size_t)m >= sizeof(text))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	bool ok = fputs(text, f) >= 0;
	ok = (fclose(f) == 0) && ok;
	if (!ok || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return -(e ? e : EIO);
	}
	return 0;
}

/* ---- connections ---- */

static void *conn_main(void *arg)
{
	struct rp_conn *c = arg;
	struct rp_server *srv = c->srv;

	if (c->plain) {
		http_serve(srv, NULL, c->fd, c->id);
	} else {
		SSL *ssl = SSL_new(srv->ssl_ctx);
		if (ssl && SSL_set_fd(ssl, c->fd) == 1)
			http_serve(srv, ssl, c->fd, c->id);
		else
			log_ssl_errors("cannot start tls on a connection");
		SSL_free(ssl);
	}

	pthread_mutex_lock(&srv->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
	close(c->fd);
	free(c);
	return NULL;
}

static void start_connection(struct rp_server *srv, int fd, bool plain)
{
	int one = 1;
	/* Replies are one write; Nagle plus delayed ACK would add 40 ms to every keep-alive request. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval rcv = { IDLE_TIMEOUT_S, 0 }, snd = { SEND_TIMEOUT_S, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof(rcv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd));

	struct rp_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	c->plain = plain;
	pthread_mutex_lock(&srv->mu);
	if (srv->stopping || srv->nconns >= RP_CONNS_MAX) {
		pthread_mutex_unlock(&srv->mu);
		rp_log("connection refused: %s", srv->stopping ? "stopping" : "too many connections");
		close(fd);
		free(c);
		return;
	}
	c->id = ++srv->next_conn_id;
	c->next = srv->conns;
	if (c->next)
		c->next->prev = c;
	srv->conns = c;
	srv->nconns++;
	pthread_mutex_unlock(&srv->mu);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	pthread_t t;
	int r = pthread_create(&t, &attr, conn_main, c);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		rp_log("cannot start a connection thread: %s", strerror(r));
		pthread_mutex_lock(&srv->mu);
		if (c->prev)
			c->prev->next = c->next;
		else
			srv->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		srv->nconns--;
		pthread_mutex_unlock(&srv->mu);
		close(fd);
		free(c);
	}
}

static void *accept_main(void *arg)
{
	struct rp_server *srv = arg;
	/* An absent plain listener (-1) is ignored by poll. */
	struct pollfd pfd[3] = { { srv->listen_fd, POLLIN, 0 }, { srv->wake_fd, POLLIN, 0 },
				 { srv->http_fd, POLLIN, 0 } };
	for (;;) {
		int r = poll(pfd, 3, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rp_log("poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		bool plain = !(pfd[0].revents & POLLIN);
		if (plain && !(pfd[2].revents & POLLIN))
			continue;
		int fd = accept4(plain ? srv->http_fd : srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			/* EMFILE and friends: log and go on; the next poll retries once fds free up. */
			rp_log("accept: %s", strerror(errno));
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			continue;
		}
		start_connection(srv, fd, plain);
	}
	return NULL;
}

/* Wake every connection thread (blocked in SSL_read or a slow fault) and wait for them to end. */
static bool stop_connections(struct rp_server *srv)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += STOP_GRACE_MS / 1000;
	pthread_mutex_lock(&srv->mu);
	srv->stopping = true;
	pthread_cond_broadcast(&srv->cv);
	for (struct rp_conn *c = srv->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	while (srv->nconns > 0) {
		if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until) == ETIMEDOUT)
			break;
	}
	bool all = srv->nconns == 0;
	pthread_mutex_unlock(&srv->mu);
	return all;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	if (parse_options(argc, argv, &o) < 0)
		return EX_USAGE_;
	if (o.log) {
		log_file = fopen(o.log, "ae");
		if (!log_file) {
			fprintf(stderr, "refplat: cannot open --log '%s': %s\n", o.log, strerror(errno));
			return 1;
		}
	}

	/* Every thread inherits this mask; main takes the stop signals with sigwait. */
	sigset_t stopset;
	sigemptyset(&stopset);
	sigaddset(&stopset, SIGTERM);
	sigaddset(&stopset, SIGINT);
	sigaddset(&stopset, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &stopset, NULL);
	signal(SIGPIPE, SIG_IGN); /* a client gone mid-reply is an error return, not a death */

	static struct rp_server srv;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv.cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&srv.mu, NULL);
	srv.listen_fd = -1;
	srv.http_fd = -1;
	srv.wake_fd = -1;
	for (size_t i = 0; i < o.ntokens; i++)
		srv.initial_tokens[i] = o.tokens[i];
	srv.ninitial_tokens = o.ntokens;

	int rc = 1;
	pthread_t acceptor, controller;
	bool acceptor_started = false;

	srv.ssl_ctx = tls_setup(&o);
	if (!srv.ssl_ctx)
		goto out;
	if (store_open(o.db, &srv.store) < 0)
		goto out;
	if (control_init(&srv) < 0)
		goto out;
	if (nrii_init(&srv, o.db, o.ins_codes, o.nins_codes) < 0)
		goto out;
	int port = 0, http_port = 0;
	srv.listen_fd = listen_on(o.listen, &port);
	if (srv.listen_fd < 0)
		goto out;
	if (o.listen_http && (srv.http_fd = listen_on(o.listen_http, &http_port)) < 0)
		goto out;
	srv.wake_fd = eventfd(0, EFD_CLOEXEC);
	if (srv.wake_fd < 0) {
		rp_log("eventfd: %s", strerror(errno));
		goto out;
	}
	if (pthread_create(&acceptor, NULL, accept_main, &srv) != 0) {
		rp_log("cannot start the accept thread");
		goto out;
	}
	acceptor_started = true;
	/* Never joined: it may sit in read(2) on stdin for ever (EOF on stdin = keep serving). */
	if (pthread_create(&controller, NULL, control_main, &srv) != 0) {
		rp_log("cannot start the control thread");
		goto out;
	}
	pthread_detach(controller);
	if (o.port_file) {
		int r = write_port_file(o.port_file, port, http_port);
		if (r < 0) {
			rp_log("cannot write --port-file '%s': %s", o.port_file, strerror(-r));
			goto out;
		}
	}
	rp_log("listening on %s (port %d)%s", o.listen, port, o.client_ca ? ", client certificates required" : "");
	if (o.listen_http)
		rp_log("listening on %s (port %d) for plain http", o.listen_http, http_port);

	int sig = 0;
	while (sigwait(&stopset, &sig) != 0)
		;
	rp_log("stopping (%s)", sig == SIGUSR1 ? "quit" : strsignal(sig));
	rc = 0;
out:
	if (acceptor_started) {
		uint64_t one = 1;
		ssize_t w = write(srv.wake_fd, &one, sizeof(one));
		(void)w;
		pthread_join(acceptor, NULL);
	}
	if (srv.listen_fd >= 0)
		close(srv.listen_fd);
	if (srv.http_fd >= 0)
		close(srv.http_fd);
	bool all_stopped = stop_connections(&srv);
	if (srv.wake_fd >= 0)
		close(srv.wake_fd);
	if (!all_stopped) {
		/* A thread still holds the store or the TLS context: leave them to exit(). */
		rp_log("connections did not stop within %d ms, exiting anyway", STOP_GRACE_MS);
		return rc;
	}
	control_free(&srv); /* waits for a control command in progress, then blocks the rest */
	nrii_free(&srv);
	store_free(srv.store);
	SSL_CTX_free(srv.ssl_ctx);
	if (log_file)
		fclose(log_file);
	return rc;
}
