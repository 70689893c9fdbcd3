#ifndef CHATCORE_fanout_H
#define CHATCORE_fanout_H
#include <chatcore/common.h>
#endif
