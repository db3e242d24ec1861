/* Parsing of user-given rates: link bandwidths and guest dirty rates.
 *   "10gbit", "400mbit", "2.5Gbit"   bits per second, decimal (as tc writes them)
 *   "100M", "1.5G", "512MiB", "1G/s" bytes per second, binary (as --max-bandwidth)
 *   "20000p", "20000pages"           4 KiB pages per second (dirty rates)
 *   "125000000"                      bytes per second */
#ifndef VS_RATE_H
#define VS_RATE_H

int vs_parse_rate(const char *text, double *bytes_per_second);

#endif
