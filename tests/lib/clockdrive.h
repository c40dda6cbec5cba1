/* clockdrive.h — drives a fake clock (agent/lib/clock.h) from a thread of its own: whenever the
 * code under test waits on it (clock_wait_until, clock_sleep_until), time jumps to that wait's
 * deadline. Fake time then passes exactly as long as the code waits, and a back-off of minutes
 * costs a millisecond. For code that runs in this process; a child agent keeps its real clock. */
#ifndef LABSHARE_CLOCKDRIVE_H
#define LABSHARE_CLOCKDRIVE_H

struct fake_clock;
struct h_clockdrive;

/* fc must be installed (fake_clock_install) and outlive the driver. NULL when out of memory. */
struct h_clockdrive *h_clockdrive_start(struct fake_clock *fc);
/* Stops and joins the driver; the fake clock stays installed and stands still. NULL-safe. */
void h_clockdrive_stop(struct h_clockdrive *d);

#endif
