/* encoding.h — instrument log lines to UTF-8: GBK/GB18030 through iconv, UTF-8 checked as it
 * is. A line that can't be converted is reported as such, never guessed at. */
#ifndef LABSHARE_ENCODING_H
#define LABSHARE_ENCODING_H

#include <stdbool.h>
#include <stddef.h>

#include "source_conf.h"
#include "utf8.h" /* utf8_valid: the one validator of the agent */

struct enc_conv;

/* A converter for one log's encoding; NULL with errno set when iconv lacks it. */
struct enc_conv *enc_conv_new(enum log_encoding enc);
void enc_conv_free(struct enc_conv *c);

/* in[0..len) in the log's encoding to NUL-terminated UTF-8 in the converter's own buffer
 * (valid until the next call). Returns it and *out_len, or NULL when the bytes are not valid
 * in that encoding (or hold a NUL byte, which no text log line has). */
const char *enc_to_utf8(struct enc_conv *c, const char *in, size_t len, size_t *out_len);

/* Any bytes made printable for a message: valid UTF-8 is kept, other bytes and control
 * characters become \xNN; cut on a character boundary so that out (cap bytes, NUL included)
 * holds it. Returns the length; *cut (may be NULL) tells whether anything was left out. */
size_t enc_printable(const char *in, size_t len, char *out, size_t cap, bool *cut);

#endif
