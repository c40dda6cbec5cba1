/* uploader.h — runs each configured sink in its own thread (the daemon), or in the
 * foreground until everything is acknowledged (`flush`). */
#ifndef LABSHARE_UPLOADER_H
#define LABSHARE_UPLOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct buffer;
struct config;
struct uploader;

struct uploader *uploader_start(const struct config *cfg, struct buffer *b);
/* Stops within a bounded time: a transfer under way is aborted. NULL-safe. */
void uploader_stop(struct uploader *u);
/* False when a sink's thread is stuck (not merely failing to reach its platform). */
bool uploader_healthy(struct uploader *u, char *why, size_t whylen);
/* Clear integrity alarms left by an earlier run, so the chain is checked afresh. */
void uploader_clear_alarms(const struct config *cfg, struct buffer *b);

/* `flush`: deliver everything pending to every configured sink. Returns the exit code:
 * 0 all acknowledged, 75 a platform unreachable, 76 records refused or an integrity alarm. */
int uploader_flush(const struct config *cfg, struct buffer *b, FILE *out);

#endif
