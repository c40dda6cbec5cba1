/* platfix.c — see platfix.h. */
#include "platfix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *platfix_folder(const char *prefix, char **certs)
{
	char *dir = h_mkdtemp(prefix);
	*certs = dir ? h_make_certs(dir) : NULL;
	if (!*certs) {
		fprintf(stderr, "platfix: no test folder with certificates for %s\n", prefix);
		h_done_dir(dir);
		return NULL;
	}
	char *token = h_path(dir, "token");
	int r = h_write_file(token, PLATFIX_TOKEN "\n", (size_t)-1, 0600);
	free(token);
	if (r < 0) {
		fprintf(stderr, "platfix: cannot write %s/token\n", dir);
		h_done_dir(dir);
		free(*certs);
		*certs = NULL;
		return NULL;
	}
	return dir;
}

int platfix_start(struct platfix *pl, const char *dir, const char *certs)
{
	if (!pl->db) {
		const char *name = pl->name ? pl->name : "platform";
		pl->dir = dir;
		pl->certs = certs;
		pl->db = h_strdupf("%s/%s.db", dir, name);
		pl->port_file = h_strdupf("%s/%s.port", dir, name);
		pl->log = h_strdupf("%s/%s.log", dir, name);
	}
	char *cert = h_path(pl->certs, "server.pem"), *key = h_path(pl->certs, "server.key");
	char *ca = h_path(pl->certs, "ca.pem");
	char *listen = h_strdupf("127.0.0.1:%d", pl->port), *listen_http = h_strdupf("127.0.0.1:%d", pl->http_port);
	char *argv[24] = { (char *)h_build_path("refplat"), (char *)"--listen", listen, (char *)"--port-file",
			   pl->port_file, (char *)"--cert", cert, (char *)"--key", key, (char *)"--db", pl->db,
			   (char *)"--token", (char *)(pl->token ? pl->token : PLATFIX_TOKEN) };
	int n = 13;
	if (pl->http) {
		argv[n++] = (char *)"--listen-http";
		argv[n++] = listen_http;
	}
	if (pl->mtls) {
		argv[n++] = (char *)"--client-ca";
		argv[n++] = ca;
	}
	if (pl->ins_code) {
		argv[n++] = (char *)"--ins-code";
		argv[n++] = (char *)pl->ins_code;
	}
	argv[n] = NULL;
	unlink(pl->port_file);
	pl->p = h_spawn(argv, NULL, true, true, pl->log);
	bool up = pl->p && h_wait_file(pl->port_file, 10000);
	char *text = up ? h_read_file(pl->port_file, NULL) : NULL;
	if (text) {
		char *nl = strchr(text, '\n');
		pl->port = (int)strtol(text, NULL, 10);
		if (pl->http)
			pl->http_port = nl ? (int)strtol(nl + 1, NULL, 10) : 0;
	}
	/* Started only when this run wrote its port (a restart on a port taken meanwhile fails). */
	int r = text && pl->port > 0 && (!pl->http || pl->http_port > 0) ? 0 : -1;
	if (r < 0)
		fprintf(stderr, "platfix: refplat did not start (see %s)\n", pl->log);
	free(text);
	free(cert);
	free(key);
	free(ca);
	free(listen);
	free(listen_http);
	return r;
}

void platfix_use_db(struct platfix *pl, const char *file)
{
	free(pl->db);
	pl->db = h_path(pl->dir, file);
}

void platfix_stop(struct platfix *pl)
{
	if (!pl || !pl->p)
		return;
	h_stop(pl->p, 5000);
	h_proc_free(pl->p);
	pl->p = NULL;
}

void platfix_free(struct platfix *pl)
{
	if (!pl)
		return;
	platfix_stop(pl);
	free(pl->db);
	free(pl->port_file);
	free(pl->log);
	pl->db = pl->port_file = pl->log = NULL;
}

char *platfix_request(struct platfix *pl, const char *line)
{
	return h_request(pl->p, line, 5000);
}

int platfix_cmd(struct platfix *pl, const char *line)
{
	char *reply = platfix_request(pl, line);
	int r = reply && strncmp(reply, "error", 5) != 0 ? 0 : -1;
	if (r < 0)
		fprintf(stderr, "platfix: refplat: \"%s\": %s\n", line, reply ? reply : "(no reply)");
	free(reply);
	return r;
}

char *platfix_config(const struct platfix *pl)
{
	return h_strdupf("\"url\": \"https://127.0.0.1:%d/api\", \"token_file\": \"%s/token\", \"ca_file\": \"%s/ca.pem\"",
			 pl->port, pl->dir, pl->certs);
}
