#ifndef CHATCORE_protocol_H
#define CHATCORE_protocol_H
#include <chatcore/common.h>
#endif
