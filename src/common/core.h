/*
 * core.h: status codes and small helpers shared by every subsystem.
 */
#ifndef S2A_CORE_H
#define S2A_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S2A_OK       0
#define S2A_ERROR    -1
#define S2A_AGAIN    -2
#define S2A_DECLINED -5

#define S2A_NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define S2A_UNUSED(x) ((void) (x))

#endif /* S2A_CORE_H */
