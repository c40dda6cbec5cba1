/* mbtcp.h — one Modbus/TCP connection driven by an event loop: non-blocking connect, the
 * request framed by hand under a transaction id of our own, the reply taken only when its
 * MBAP header (transaction id, protocol id 0, length) and its PDU (mb_reply_check) fit. */
#ifndef LABSHARE_MBTCP_H
#define LABSHARE_MBTCP_H

#include <stdbool.h>
#include <stdint.h>

#include "mbplan.h"

#define MB_IO_WAIT 1

struct mb_conn;

struct mb_conn *mb_conn_new(const struct bus_cfg *cfg);
void mb_conn_free(struct mb_conn *c, int epfd);
/* Drops the connection (the next request connects again). */
void mb_conn_close(struct mb_conn *c, int epfd);

/* Starts request rq to unit (connecting first when there is no connection); the socket is
 * watched in epfd under tag. MB_IO_WAIT: call mb_conn_step when the socket is ready or
 * mb_conn_deadline (real CLOCK_MONOTONIC ms: network time-outs are real time whatever clock
 * schedules the polls) has passed. < 0: failed, out->error says why. */
int mb_conn_start(struct mb_conn *c, int epfd, uint64_t tag, int unit, const struct mb_req *rq,
		  struct mb_values *out);
/* The socket was ready, or (timed_out) the deadline passed: MB_IO_WAIT; 0, the values in regs or
 * bits; or < 0 and out->error (the connection dropped unless the device answered with an
 * exception). */
int mb_conn_step(struct mb_conn *c, int epfd, bool timed_out, uint16_t *regs, uint8_t *bits,
		 struct mb_values *out);
int64_t mb_conn_deadline(const struct mb_conn *c);
/* Whether the last failure was the connection (not one unit's reply). */
bool mb_conn_refused(const struct mb_conn *c);

int64_t mb_real_mono_ms(void);

#endif
