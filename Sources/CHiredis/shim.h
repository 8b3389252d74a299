#ifndef OUTBOUND_CHIREDIS_SHIM_H
#define OUTBOUND_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
