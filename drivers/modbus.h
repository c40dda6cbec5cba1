/* modbus.h — the Modbus source (TCP on an event loop of its own, RTU on libmodbus): buses owned
 * by one request at a time, instruments polled on a fixed grid, failing ones backing off on
 * their own. */
#ifndef LABSHARE_MODBUS_H
#define LABSHARE_MODBUS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "source_conf.h"

struct config;
#include "source.h"

extern const struct source_ops modbus_source;

/* Whether every instrument due by now (clock_mono_ms) has been polled and every reading handed
 * to the core: a test that drives a fake clock waits for this after each step. */
bool modbus_settled(void *state);

/* One read of an instrument's points. */
struct mb_values {
	bool ok;
	char error[192];
	bool has_run, has_samples, has_in_use;
	double run_raw, samples_raw, in_use_raw;
	bool in_use;
	/* A meter (raw, before scale): power and energy each poll, voltage and frequency only
	 * when asked for (poll, scan). */
	bool has_power, has_energy, has_voltage, has_frequency;
	double power_raw, energy_raw, voltage_raw, frequency_raw;
};

struct mb_bus;

/* mbbus.c: a bus, connected on its first read. */
struct mb_bus *mb_bus_new(const struct bus_cfg *bc);
void mb_bus_free(struct mb_bus *bus);
/* Drops the connection (the next read connects again). */
void mb_bus_close(struct mb_bus *bus);
/* Monotonic ms before which the bus takes no request (gap_ms after a frame). */
int64_t mb_bus_ready_ms(const struct mb_bus *bus);
/* Reads the points the daemon needs each poll, blocking (RTU lines, `poll`): counters, in-use,
 * a meter's power and energy; neighbouring points of a table in one request (mbplan.h). */
void mb_read_instrument(struct mb_bus *bus, const struct modbus_cfg *m, struct mb_values *out);
/* The same and, when extras, a meter's voltage and frequency too (poll). */
void mb_read_points(struct mb_bus *bus, const struct modbus_cfg *m, bool extras, struct mb_values *out);
/* One read of a single point with the bus's time-out and no retry (scan): 0 with *raw set, or
 * -errno (-ETIMEDOUT: nothing answered; a Modbus exception: the unit is there); err says why. */
int mb_read_point(struct mb_bus *bus, int unit, const struct mb_point *p, double *raw, char *err,
		  size_t errlen);

/* `labshare-agent poll` (mbpoll.c): the daemon's latest readings while one runs on the state
 * folder (modbus_poll_daemon), else every source read once (modbus_poll_once). When the lock
 * can't be looked at (permissions), no bus is opened: 1 and the reason on stderr. */
int modbus_poll(const struct config *cfg, FILE *out);

/* Reads every Modbus source once and prints the decoded values.
 * Returns 0 when all were read, 1 when any failed. */
int modbus_poll_once(const struct config *cfg, FILE *out);

/* `poll` while a daemon (pid) runs on the state folder: it owns the buses and a second master
 * breaks an RS-485 line (SPEC §2), so no bus is opened; the daemon's latest readings, from
 * {state_dir}/status.json, are printed as modbus_poll_once prints its own, after a line saying
 * whose they are and how old, each with the time it was read. Returns 0 when every
 * instrument's latest reading is ok, 1 when any failed or was never read. When the daemon
 * stopped meanwhile (its status gone with it), reads them itself. */
int modbus_poll_daemon(const struct config *cfg, long pid, FILE *out);

#endif
