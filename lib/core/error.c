/* The error table's generated lookups. */
#include <chatcore/error.h>

const char *cc_strerror(int err) {
  switch (err) {
  case CC_OK:
    return "success";
#define CC_ERR_MSG_(name, value, msg)                                                    \
  case value:                                                                            \
    return msg;
    CC_ERRNO_MAP(CC_ERR_MSG_)
#undef CC_ERR_MSG_
  default:
    return "unknown error";
  }
}

const char *cc_err_name(int err) {
  switch (err) {
  case CC_OK:
    return "OK";
#define CC_ERR_NAME_(name, value, msg)                                                   \
  case value:                                                                            \
    return #name;
    CC_ERRNO_MAP(CC_ERR_NAME_)
#undef CC_ERR_NAME_
  default:
    return "UNKNOWN";
  }
}

int cc_err_is_fatal(int err) {
  return err <= CC_ERR_FATAL;
}
