#include <chatcore/common.h>

#include "chatcore_config.h"

static const cc_version_info version_info = {
    CC_VERSION_AGE,
    (CC_VERSION_MAJOR << 16) | (CC_VERSION_MINOR << 8) | CC_VERSION_PATCH,
    CC_VERSION_STRING,
    "chatcore.v1",
};

const cc_version_info *cc_version(void) {
  return &version_info;
}
