/* platfix.h — the reference platform (tests/refplat) for tests and benchmarks: over HTTPS on
 * 127.0.0.1 with a CA made at test time, its control commands on stdin, restarted on the same
 * ports (an outage, not a move). No cmocka here: failures come back as -1 or NULL, with the
 * reason on stderr, for the test to assert on. */
#ifndef LABSHARE_PLATFIX_H
#define LABSHARE_PLATFIX_H

#include <stdbool.h>

#include "harness.h"

/* The token a platform started here takes, and a test folder's token file holds. */
#define PLATFIX_TOKEN "s3cret"

struct platfix {
	/* Set before the first start (all optional). */
	const char *name;       /* "<dir>/<name>.db", .port, .log; default "platform" */
	const char *token;      /* default PLATFIX_TOKEN */
	bool http;              /* plain HTTP too (--listen-http): http_port */
	bool mtls;              /* client certificates required (--client-ca <certs>/ca.pem) */
	const char *ins_code;   /* NRII: --ins-code */
	/* Filled in. */
	const char *dir, *certs; /* borrowed: platfix_start's arguments */
	char *db, *port_file, *log;
	struct h_proc *p;
	int port, http_port;    /* kept across restarts */
};

/* A fresh test folder (h_mkdtemp(prefix)) holding certs/ (h_make_certs) and a token file
 * "token" (mode 0600) with PLATFIX_TOKEN. *certs: "<folder>/certs". Both freed by the caller
 * (h_done_dir for the folder). NULL when anything fails. */
char *platfix_folder(const char *prefix, char **certs);

/* Starts the platform with its db in dir (the first time: on free ports; again: on the same
 * ones) and waits for its port file. 0, or -1 with the reason on stderr. */
int platfix_start(struct platfix *pl, const char *dir, const char *certs);
/* Between two starts: the platform's db is "<dir>/<file>" from now on (a restore from another
 * copy, say), the ports staying the same. */
void platfix_use_db(struct platfix *pl, const char *file);
/* SIGTERM and reap (an outage: platfix_start brings it back). NULL-safe, idempotent. */
void platfix_stop(struct platfix *pl);
/* Stops it and frees what start allocated. */
void platfix_free(struct platfix *pl);

/* A control command (tests/refplat/README): the reply line (caller frees), NULL without one. */
char *platfix_request(struct platfix *pl, const char *line);
/* A command whose reply is not an error: 0, else -1 with the reply on stderr. */
int platfix_cmd(struct platfix *pl, const char *line);

/* The "platform" members of an agent's config that reach it: url, token_file (<dir>/token),
 * ca_file. Caller frees. */
char *platfix_config(const struct platfix *pl);

#endif
