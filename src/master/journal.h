/*
 * journal.h: generation records in the master (see journal.c). Its
 * control operations are declared in ops.h; nothing else is exported.
 */
#ifndef S2A_MASTER_JOURNAL_H
#define S2A_MASTER_JOURNAL_H

#include "common/ops.h"

#endif /* S2A_MASTER_JOURNAL_H */
