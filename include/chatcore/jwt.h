#ifndef CHATCORE_jwt_H
#define CHATCORE_jwt_H
#include <chatcore/common.h>
#endif
