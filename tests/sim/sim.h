/* sim.h — what the parts of the Modbus device simulator share (tests/sim/): endpoints and
 * the units they serve, typed access to the register images, the network side and the
 * control commands. modbus-sim.c holds main and the event loop. */
#ifndef MODBUS_SIM_H
#define MODBUS_SIM_H

#include <modbus/modbus.h>   /* libmodbus; a bare <modbus.h> finds drivers/modbus.h first */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A TCP ADU is at most 260 bytes (MBAP 7 + PDU 253); an RTU ADU at most 256. */
#define SIM_MAX_ADU 260
#define SIM_NO_UNITS 256
#define SIM_CLIENT_IN 4096

enum sim_table { SIM_HOLDING, SIM_INPUT, SIM_COIL, SIM_DISCRETE };
enum sim_type { SIM_U16, SIM_U32, SIM_I32, SIM_U64, SIM_F32, SIM_BIT };
enum sim_order { SIM_BIG, SIM_LITTLE };

/* A counter that advances in real time. The total due since t0_ns is recomputed from the
 * rate each time (not summed tick by tick), so a fractional rate never drifts; only the
 * difference to what was already applied is added to the register, which keeps writes
 * made in between (set, add, a Modbus write) and wraps it like a device counter would. */
struct sim_auto {
	enum sim_table table;
	unsigned addr;
	enum sim_type type;
	enum sim_order order;
	double rate;        /* per second */
	int64_t t0_ns;      /* monotonic */
	int64_t done;       /* whole steps applied since t0 (integer types) */
	double done_f;      /* amount applied since t0 (f32) */
};

struct sim_unit {
	int id;
	modbus_mapping_t *map;
	/* faults */
	unsigned delay_ms;
	int exception;      /* 0: off, else the exception code every request gets */
	bool silence, wrongunit, shortreply;
	bool twice, stale, badproto; /* TCP only: a gateway that repeats, replays or garbles MBAP */
	uint64_t requests;
	struct sim_auto *autos;
	size_t nautos, autos_cap;
};

enum sim_ep_kind { SIM_TCP, SIM_RTU };

struct sim_buf {
	uint8_t *p;
	size_t len, cap;
};

struct sim_endpoint {
	int index;
	enum sim_ep_kind kind;
	char *spec;          /* as given on the command line, for messages */
	struct sim_unit *units[SIM_NO_UNITS];
	uint64_t requests, unserved;
	uint64_t accepted;   /* TCP connections taken since start or reset-stats */

	/* tcp */
	char *host;          /* NULL: any address */
	int port;            /* asked for; after the first listen, the bound one (kept for `open`) */
	int listen_fd;       /* -1 while closed */
	int64_t accept_resume_ns; /* out of descriptors: accepting paused until then */
	int64_t accept_err_logged_ns;

	/* rtu */
	char *device;
	int baud, data_bits, stop_bits;
	char parity;
	modbus_t *rtu;       /* libmodbus opens and configures the serial line */
	int fd;              /* -1 while closed */
	uint8_t rin[512];
	size_t rin_len;
	int64_t last_rx_ns;
	int64_t gap_ns;      /* silence that ends a frame whose length the function code can't tell */
	uint64_t bad_frames;
	struct sim_buf rout;
};

struct sim_client {
	int fd;              /* -1: free slot */
	uint32_t gen;        /* bumped on close, so a delayed reply never reaches a newer client */
	int ep;
	uint8_t *in;         /* SIM_CLIENT_IN bytes; apart, so the loop's scan of slots stays small */
	size_t in_len;
	uint8_t *last;       /* SIM_MAX_ADU bytes after in: the last reply made for it (`stale`) */
	size_t last_len;
	struct sim_buf out;
};

/* A reply held back by `delay`: a min-heap ordered by due time, then by arrival. */
struct sim_pending {
	int64_t due_ns;
	uint64_t seq;
	int ep;
	int client;          /* -1: the endpoint's serial line */
	uint32_t gen;
	uint16_t len;
	uint8_t data[SIM_MAX_ADU + 2];
};

struct sim {
	struct sim_endpoint *eps;
	size_t neps;
	unsigned regs;
	struct sim_client *clients;
	size_t nclients;     /* slots; new clients take the lowest free one */
	size_t nlive;        /* clients connected: lets scans stop early after a burst */
	struct sim_pending *heap;
	size_t heap_len, heap_cap;
	uint64_t heap_seq, replies_dropped;
	modbus_t *engine;    /* a never-connected TCP context whose replies land in cap_wr */
	int cap_wr, cap_rd;
	uint64_t requests, unserved;
	bool quit;
};

/* modbus-sim.c */
int64_t sim_now_ns(void);
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* sim-image.c: typed values in a unit's register image, and auto counters */
int sim_table_parse(const char *s, enum sim_table *t);
int sim_type_parse(const char *s, enum sim_type *t);
int sim_order_parse(const char *s, enum sim_order *o);
/* NULL when TYPE fits TABLE at ADDR within regs; else why not. */
const char *sim_place_check(enum sim_table table, unsigned addr, enum sim_type type, unsigned regs);
uint64_t sim_read_raw(const struct sim_unit *u, enum sim_table table, unsigned addr,
		      enum sim_type type, enum sim_order order);
void sim_write_raw(struct sim_unit *u, enum sim_table table, unsigned addr, enum sim_type type,
		   enum sim_order order, uint64_t raw);
int sim_value_parse(enum sim_type type, const char *s, uint64_t *raw);
void sim_value_format(enum sim_type type, uint64_t raw, char *buf, size_t cap);
/* Adds DELTA text to raw with the type's wrap-around; -1 when DELTA doesn't parse. */
int sim_value_add(enum sim_type type, uint64_t raw, const char *delta, uint64_t *out);
int sim_parse_rate(const char *s, double *rate);
/* Starts, changes (rate != 0) or stops (rate == 0) the auto counter at that place; 0 or -ENOMEM. */
int sim_auto_set(struct sim_unit *u, enum sim_table table, unsigned addr, enum sim_type type,
		 enum sim_order order, double rate, int64_t now_ns);
void sim_unit_advance(struct sim_unit *u, int64_t now_ns);
struct sim_unit *sim_unit_new(int id, unsigned regs);
void sim_unit_free(struct sim_unit *u);

/* sim-net.c: endpoints, clients, framing, the reply pipeline and the delay queue */
int sim_engine_open(struct sim *s);
void sim_engine_close(struct sim *s);
int sim_ep_open(struct sim *s, struct sim_endpoint *ep);
void sim_ep_close(struct sim *s, struct sim_endpoint *ep);
void sim_ep_drop_clients(struct sim *s, struct sim_endpoint *ep);
size_t sim_ep_clients(const struct sim *s, const struct sim_endpoint *ep);
void sim_accept(struct sim *s, struct sim_endpoint *ep);
void sim_client_readable(struct sim *s, size_t ci);
void sim_client_writable(struct sim *s, size_t ci);
void sim_client_close(struct sim *s, size_t ci);
void sim_rtu_readable(struct sim *s, struct sim_endpoint *ep, int64_t now_ns);
void sim_rtu_writable(struct sim *s, struct sim_endpoint *ep);
/* Ends a partial serial frame whose silence has passed; returns the next such deadline or -1. */
int64_t sim_rtu_tick(struct sim *s, struct sim_endpoint *ep, int64_t now_ns);
/* Sends delayed replies that are due; returns the next due time or -1. */
int64_t sim_timers_run(struct sim *s, int64_t now_ns);
uint16_t sim_crc16(const uint8_t *p, size_t n);

/* sim-control.c: one command line in, one reply line out (malloc'd, no newline). */
char *sim_command(struct sim *s, const char *line);

#endif
