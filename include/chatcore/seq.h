#ifndef CHATCORE_seq_H
#define CHATCORE_seq_H
#include <chatcore/common.h>
#endif
