/* nrii_reply.h — reading what the NRII platform answered (SPEC §8): pure, any bytes in, a
 * verdict out; the fuzz target feeds it whatever the network could. */
#ifndef LABSHARE_NRII_REPLY_H
#define LABSHARE_NRII_REPLY_H

#include <stddef.h>

/* What a reply body came to. */
enum nrii_reply_kind {
	NRII_REPLY_NONE,    /* no SOAP envelope, or one without a usable `return` */
	NRII_REPLY_FAULT,   /* a SOAP Fault */
	NRII_REPLY_RETURN,  /* `return` with a leading integer in code */
};

struct nrii_reply {
	enum nrii_reply_kind kind;
	int code;
	char text[512];     /* the return text or the fault string, cut; "" when none */
};

/* Finds the SOAP envelope in body (it may be wrapped in other text, e.g. a MIME part), parses
 * it with libxml2 and reads `return`. Never fails: what it can't read is NRII_REPLY_NONE. */
void nrii_parse_reply(const char *body, size_t len, struct nrii_reply *out);

/* Initialises libxml2 once; call before starting a thread that parses replies (libxml2 wants
 * its first initialisation outside concurrent use). nrii_parse_reply calls it too. */
void nrii_reply_init(void);

#endif
