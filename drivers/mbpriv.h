/* mbpriv.h — the Modbus driver's parts, shared by modbus.c (instruments, readings to the core,
 * status) and mbloop.c (the threads that poll: one event loop for every TCP bus, one thread
 * per RTU line). Everything here is under d->mu unless it says otherwise. */
#ifndef LABSHARE_MBPRIV_H
#define LABSHARE_MBPRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mbheap.h"
#include "mbplan.h"
#include "mbtcp.h"
#include "modbus.h"
#include "submit.h"

struct inst {
	const struct source_instrument *cfg;
	size_t bus;
	int64_t due_ms;              /* monotonic, on the instrument's grid (or its back-off) */
	int failures;
	bool offline;                /* device_offline sealed, device_online not yet */
	bool started;
	bool exact;                  /* its device refused a coalesced request: one per point */
	int64_t offline_since;
	struct mb_plan plan;
	/* status */
	int64_t last_ok;
	struct mb_values last;       /* the latest good reading */
	char last_error[192];
	int64_t last_at_us;          /* wall time of the latest poll, good or not; 0: none yet */
	bool last_poll_ok;
	uint64_t polls, late_polls;
};

struct modbus_driver;

struct lane {                    /* a bus and the instruments on it */
	struct modbus_driver *d;
	bool tcp;
	struct mb_bus *bus;          /* RTU: blocking, on the line's own thread */
	struct mb_conn *conn;        /* TCP: driven by the event loop */
	struct mb_heap due;          /* its instruments (indices into d->insts) by due_ms */
	bool busy;                   /* a poll under way */
	int64_t ready_ms;            /* TCP: no request before this (gap_ms) */
	int64_t min_interval_ms;
	int64_t timeout_ms;          /* the bus's time-out: what a silent unit's probe costs */
	/* TCP: the gateway could not be reached; polls fail without a connect until down_until
	 * (the connect is the cheap probe, at most every min_interval_ms) */
	int64_t down_until, down_backoff;
	char down_error[192];
	/* TCP, the poll under way */
	uint32_t cur;
	int req;
	struct mb_values v;
	size_t flight_at;            /* index in d->flight */
	/* RTU */
	pthread_t th;
	bool th_started;
};

struct qitem {
	struct obs obs;
	char detail[256];
};

struct modbus_driver {
	const struct source_conf *cfg;
	struct core *core;
	struct inst *insts;
	size_t n_insts;
	struct lane *lanes;
	size_t n_lanes;
	pthread_mutex_t mu;
	pthread_cond_t cv;           /* stop (the pollers' timed waits) */
	pthread_cond_t flush_cv;     /* readings queued, or stop */
	bool stopping;
	size_t n_busy;
	/* the TCP event loop (mbloop.c) */
	struct mb_heap ready;        /* idle TCP lanes by when each can start its next poll */
	uint32_t *flight;            /* TCP lanes with a request out */
	size_t n_flight;
	int epfd, evfd;
	pthread_t loop;
	bool loop_started;
	_Atomic int64_t loop_wake_by; /* monotonic ms by which the loop means to go round again */
	int64_t gather_ms;           /* how early a poll may start: a few polls' worth of time */
	/* readings on their way to the core */
	pthread_t flusher;
	bool flusher_started;
	_Atomic int64_t flusher_beat; /* monotonic ms of the flusher's last round */
	int64_t pending_since;       /* monotonic ms: the queue has not been empty since */
	struct qitem *queue;
	size_t q_len, q_cap;
	bool flushing;               /* the flusher holds readings taken from the queue */
	uint64_t q_dropped;
};

/* modbus.c, under d->mu. */
/* The instrument polled now: counted late when it starts a tenth of an interval after its time. */
void mb_poll_begin(struct modbus_driver *d, struct inst *in, int64_t now_ms);
/* Its reading (or failure) to the queue, its next time, and back into its lane's heap. */
void mb_poll_done(struct modbus_driver *d, struct lane *l, struct inst *in, const struct mb_values *v);
/* When the lane can start its next poll. */
int64_t mb_lane_next(const struct lane *l);

/* mbloop.c */
int mb_loop_init(struct modbus_driver *d);
int mb_loop_start(struct modbus_driver *d);
void mb_loop_stop(struct modbus_driver *d); /* d->stopping already set */
void mb_loop_destroy(struct modbus_driver *d);
void *mb_rtu_line(void *lane_arg);

#endif
