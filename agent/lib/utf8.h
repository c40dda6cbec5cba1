/* utf8.h — the agent's one UTF-8 validator (everything sealed is valid UTF-8, SPEC §3), and the
 * conversions to it: a named charset through iconv, and a repair for the agent's own words. */
#ifndef LABSHARE_UTF8_H
#define LABSHARE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What utf8_decode returns for a byte that starts no well-formed sequence. */
#define UTF8_INVALID 0xffffffffu

/* The one decoder: the character at s (n bytes left, n > 0) — its code point, and its length
 * (1..4) in *len. Not well-formed (overlong forms, surrogates, code points past U+10FFFF, cut
 * or stray continuation bytes): UTF8_INVALID, *len 1, so a bad byte is one character of its
 * own and can neither hide a delimiter nor swallow what follows. */
uint32_t utf8_decode(const char *s, size_t n, size_t *len);
/* Length (1..4) of the well-formed UTF-8 sequence at s (n bytes left, n > 0), 0 when it is
 * not one (utf8_decode's rule). */
size_t utf8_char_len(const char *s, size_t n);
/* The one cutter: how many bytes of s[0..len) are kept to hold at most max_chars characters.
 * Never inside a well-formed sequence; a malformed byte counts as one character. */
size_t utf8_cut(const char *s, size_t len, size_t max_chars);
/* Whether s[0..len) is well-formed UTF-8. */
bool utf8_valid(const char *s, size_t len);
/* The same for a NUL-terminated string; NULL counts as valid (an absent field). */
bool utf8_str_valid(const char *s);

/* A copy of s with every byte that is not part of well-formed UTF-8 written as the text
 * "\xNN" (for text the agent writes itself, e.g. a file name in an event: it says what the
 * bytes were without sealing them). NULL on ENOMEM. Caller frees. */
char *utf8_repair(const char *s);

/* in (NUL-terminated, in charset — an iconv name such as "GB18030" or the locale's
 * nl_langinfo(CODESET)) to UTF-8 in *out (caller frees). Returns 0, -EILSEQ when the bytes
 * are not valid in charset, -EINVAL when iconv does not know charset, or -ENOMEM. The
 * result is checked with utf8_valid whatever iconv says. Plain ASCII ("ANSI_X3.4-1968", the
 * C and POSIX locales) takes valid UTF-8 as it is: those locales are what cron, ssh without
 * a locale and many service managers give, and they say nothing about bytes above 0x7f. */
int utf8_from_charset(const char *charset, const char *in, char **out);

#endif
