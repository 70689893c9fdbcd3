#ifndef CHATCORE_ratelimit_H
#define CHATCORE_ratelimit_H
#include <chatcore/common.h>
#endif
