/* CPU time (user + system) of this process and of single threads, for the CPU cost of a
 * migration: the process's time minus its vCPU threads' time is the monitor's work. */
#ifndef VS_CPU_TIME_H
#define VS_CPU_TIME_H

#include <pthread.h>
#include <stdint.h>

uint64_t vs_process_cpu_ns(void);
/* 0 if the thread's clock cannot be read. */
uint64_t vs_thread_cpu_ns(pthread_t thread);

#endif
