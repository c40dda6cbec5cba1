/* nrii_soap.h — the NRII service's wire checks (nrii_soap.c), without state: the SOAP 1.1 envelope
 * SPEC §8 describes, and the instruList record field by field. Private to nrii.c and nrii_soap.c;
 * refplat.h stays the contract. */
#ifndef LABSHARE_REFPLAT_NRII_SOAP_H
#define LABSHARE_REFPLAT_NRII_SOAP_H

#include "refplat.h"

#include <cjson/cJSON.h>
#include <libxml/tree.h>

#define NS_SOAP "http://schemas.xmlsoap.org/soap/envelope/"
#define NS_NRII "http://instru.server.ws.com/"
#define TEXT_MAX 256

/* The operation's three arguments, as text (xmlFree() each). */
struct call {
	xmlChar *ins_code, *type, *list;
};

/* NULL when the envelope is what SPEC §8 describes, else why not (a SOAP fault). */
const char *nrii_check_envelope(xmlDoc *doc, struct call *call, char *why, size_t whylen);

/* Why a field is wrong: 201 missing, 202 bad value. */
struct verdict {
	int code;
	char text[TEXT_MAX];
};

/* Type 6, a service record: every field SPEC §8 lists, each in its format and length. */
void nrii_check_service(const cJSON *o, const char *ins_code, struct verdict *v);
/* Type 4, an instrument: its keys and the year's machine hours. */
void nrii_check_instrument(const cJSON *o, const char *ins_code, struct verdict *v);
/* Only ASCII bytes (instruList carries non-ASCII as \uXXXX). */
bool nrii_ascii(const xmlChar *s);

#endif
