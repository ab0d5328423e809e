/* The host's monotonic clock, for durations and deadlines. */
#ifndef FB_UTIL_CLOCK_H
#define FB_UTIL_CLOCK_H

/* CLOCK_MONOTONIC in milliseconds (fractional). */
double fb_now_ms(void);

#endif
