/* Identifier rules and the direct-chat id (include/chatcore/protocol.h). */
#include <chatcore/error.h>
#include <chatcore/protocol.h>

#include <string.h>

/* Bit 0: allowed in a user id; bit 1: allowed in chat and client message ids. */
static const uint8_t id_chars[256] = {
    ['-'] = 3, ['.'] = 3, ['_'] = 3, ['@'] = 3, [':'] = 2, ['0'] = 3, ['1'] = 3,
    ['2'] = 3, ['3'] = 3, ['4'] = 3, ['5'] = 3, ['6'] = 3, ['7'] = 3, ['8'] = 3,
    ['9'] = 3, ['A'] = 3, ['B'] = 3, ['C'] = 3, ['D'] = 3, ['E'] = 3, ['F'] = 3,
    ['G'] = 3, ['H'] = 3, ['I'] = 3, ['J'] = 3, ['K'] = 3, ['L'] = 3, ['M'] = 3,
    ['N'] = 3, ['O'] = 3, ['P'] = 3, ['Q'] = 3, ['R'] = 3, ['S'] = 3, ['T'] = 3,
    ['U'] = 3, ['V'] = 3, ['W'] = 3, ['X'] = 3, ['Y'] = 3, ['Z'] = 3, ['a'] = 3,
    ['b'] = 3, ['c'] = 3, ['d'] = 3, ['e'] = 3, ['f'] = 3, ['g'] = 3, ['h'] = 3,
    ['i'] = 3, ['j'] = 3, ['k'] = 3, ['l'] = 3, ['m'] = 3, ['n'] = 3, ['o'] = 3,
    ['p'] = 3, ['q'] = 3, ['r'] = 3, ['s'] = 3, ['t'] = 3, ['u'] = 3, ['v'] = 3,
    ['w'] = 3, ['x'] = 3, ['y'] = 3, ['z'] = 3,
};

static int check_id(const char *id, size_t len, size_t max, uint8_t bit) {
  if (!id || len == 0 || len > max) return CC_ERR_INVALID;
  for (size_t i = 0; i < len; i++)
    if (!(id_chars[(uint8_t)id[i]] & bit)) return CC_ERR_INVALID;
  return 0;
}

int cc_protocol_check_user_id(const char *id, size_t len) {
  return check_id(id, len, CC_PROTOCOL_USER_ID_MAX, 1);
}

int cc_protocol_check_chat_id(const char *id, size_t len) {
  return check_id(id, len, CC_PROTOCOL_CHAT_ID_MAX, 2);
}

int cc_protocol_check_client_msg_id(const char *id, size_t len) {
  return check_id(id, len, CC_PROTOCOL_CLIENT_MSG_ID_MAX, 2);
}

/* Bytewise order, a shorter prefix first (memcmp, then length). */
static int id_cmp(const char *a, size_t al, const char *b, size_t bl) {
  int r = memcmp(a, b, al < bl ? al : bl);
  if (r) return r;
  return al < bl ? -1 : al > bl;
}

int cc_protocol_direct_chat_id(char *out, size_t out_size, size_t *out_len,
                               const char *user_a, size_t a_len, const char *user_b,
                               size_t b_len) {
  if (!out || cc_protocol_check_user_id(user_a, a_len) ||
      cc_protocol_check_user_id(user_b, b_len))
    return CC_ERR_INVALID;
  int r = id_cmp(user_a, a_len, user_b, b_len);
  if (r == 0) return CC_ERR_INVALID;
  if (r > 0) {
    const char *t = user_a;
    user_a = user_b;
    user_b = t;
    size_t tl = a_len;
    a_len = b_len;
    b_len = tl;
  }
  size_t n = 2 + a_len + 1 + b_len;
  if (out_size < n + 1) return CC_ERR_TOO_LARGE;
  memcpy(out, "d:", 2);
  memcpy(out + 2, user_a, a_len);
  out[2 + a_len] = ':';
  memcpy(out + 3 + a_len, user_b, b_len);
  out[n] = '\0';
  if (out_len) *out_len = n;
  return 0;
}

int cc_protocol_parse_direct_chat_id(const char *chat_id, size_t len, const char **lo,
                                     size_t *lo_len, const char **hi, size_t *hi_len) {
  if (!chat_id || len < 5 || len > CC_PROTOCOL_DIRECT_CHAT_ID_MAX ||
      memcmp(chat_id, "d:", 2) != 0)
    return CC_ERR_INVALID;
  const char *a = chat_id + 2;
  const char *sep = memchr(a, ':', len - 2);
  if (!sep) return CC_ERR_INVALID;
  size_t al = (size_t)(sep - a);
  const char *b = sep + 1;
  size_t bl = len - 3 - al;
  /* A user id has no ':', so a second one makes check_user_id fail. */
  if (cc_protocol_check_user_id(a, al) || cc_protocol_check_user_id(b, bl) ||
      id_cmp(a, al, b, bl) >= 0)
    return CC_ERR_INVALID;
  if (lo) *lo = a;
  if (lo_len) *lo_len = al;
  if (hi) *hi = b;
  if (hi_len) *hi_len = bl;
  return 0;
}
