// libchatcore — C++17 header-only wrapper of the C API's errors, version, JWT
// verification, rate limiter and protocol codec (docs/bindings-cpp.md).
//
// Handles are move-only RAII objects: the destructor frees the C object, a
// moved-from object holds nothing and each of its methods throws chatcore::error
// with CC_ERR_CLOSED. Every failure is thrown as chatcore::error (or a subclass
// for JWT, protocol and rate-limit errors) carrying the CC_ERR_* code, its name
// and message. Thread safety is the C API's (jwt.h, ratelimit.h, protocol.h).
#ifndef CHATCORE_HPP
#define CHATCORE_HPP

#include <chatcore/chatcore.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chatcore {

// ---- errors ----

// A libchatcore call failed: code() is the CC_ERR_* value, name() its name
// without prefix ("JWT_EXPIRED"), what() "CC_ERR_<name>: <message>[: <detail>]".
class error : public std::runtime_error {
public:
  explicit error(int code, const std::string &detail = std::string())
      : std::runtime_error(text(code, detail)), code_(code) {}
  int code() const noexcept {
    return code_;
  }
  const char *name() const noexcept {
    return cc_err_name(code_);
  }
  const char *message() const noexcept {
    return cc_strerror(code_);
  }
  bool fatal() const noexcept {
    return cc_err_is_fatal(code_) != 0;
  }

private:
  static std::string text(int code, const std::string &detail) {
    std::string s = std::string("CC_ERR_") + cc_err_name(code) + ": " + cc_strerror(code);
    if (!detail.empty()) s += ": " + detail;
    return s;
  }
  int code_;
};

// CC_ERR_JWT_*.
class jwt_error : public error {
public:
  using error::error;
};

// CC_ERR_PROTO, CC_ERR_PROTO_UNKNOWN, CC_ERR_PROTO_TYPE.
class protocol_error : public error {
public:
  using error::error;
};

// CC_ERR_RATE_LIMITED, with the wait until the same take would pass.
class rate_limited_error : public error {
public:
  explicit rate_limited_error(std::uint64_t retry_after_ns)
      : error(CC_ERR_RATE_LIMITED), retry_after_ns_(retry_after_ns) {}
  std::uint64_t retry_after_ns() const noexcept {
    return retry_after_ns_;
  }

private:
  std::uint64_t retry_after_ns_;
};

// Throws the error for `rc` when it is negative (the most specific class);
// returns `rc` otherwise.
inline int check(int rc, const std::string &detail = std::string()) {
  if (rc >= 0) return rc;
  if (rc <= CC_ERR_JWT_MALFORMED && rc >= CC_ERR_JWT_KEY) throw jwt_error(rc, detail);
  if (rc <= CC_ERR_PROTO && rc >= CC_ERR_PROTO_TYPE) throw protocol_error(rc, detail);
  if (rc == CC_ERR_RATE_LIMITED) throw rate_limited_error(0);
  throw error(rc, detail);
}

// ---- version ----

struct version_info {
  int major, minor, patch;
  std::string version;  // "0.1.0"
  std::string protocol; // "chatcore.v1"
};

// The version of the library the program runs against.
inline version_info version() {
  const cc_version_info *v = cc_version();
  return version_info{static_cast<int>((v->version_num >> 16) & 0xFF),
                      static_cast<int>((v->version_num >> 8) & 0xFF),
                      static_cast<int>(v->version_num & 0xFF), v->version_str,
                      v->protocol_str};
}

namespace detail {
// Owns one C pointer, freed with F; move-only.
template <typename T, void (*F)(T *)> class handle {
public:
  handle() noexcept = default;
  explicit handle(T *p) noexcept : p_(p) {}
  handle(handle &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  handle &operator=(handle &&o) noexcept {
    if (this != &o) {
      F(p_);
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  handle(const handle &) = delete;
  handle &operator=(const handle &) = delete;
  ~handle() {
    F(p_);
  }
  // The pointer, or chatcore::error CC_ERR_CLOSED when there is none (moved from).
  T *get() const {
    if (!p_) throw error(CC_ERR_CLOSED, "moved-from object");
    return p_;
  }
  explicit operator bool() const noexcept {
    return p_ != nullptr;
  }

private:
  T *p_ = nullptr;
};

inline const std::uint8_t *bytes(std::string_view s) noexcept {
  return reinterpret_cast<const std::uint8_t *>(s.data());
}
} // namespace detail

// ---- JWT ----

enum class jwt_alg : int {
  hs256 = CC_JWT_HS256,
  hs384 = CC_JWT_HS384,
  hs512 = CC_JWT_HS512,
  rs256 = CC_JWT_RS256,
  es256 = CC_JWT_ES256
};

// The algorithm named `name` ("RS256"); jwt_error JWT_ALG for others.
inline jwt_alg jwt_alg_from_name(const std::string &name) {
  cc_jwt_alg a{};
  check(cc_jwt_alg_from_name(name.c_str(), &a), name);
  return static_cast<jwt_alg>(a);
}

struct jwt_claims {
  std::string sub;
  std::int64_t exp;
  std::optional<std::int64_t> iat;
};

class jwt_verifier;

// What a jwt_verifier checks (jwt.h). `key`: the HMAC secret, or for RS256 and
// ES256 a PEM public key. `fallback` is borrowed: it must outlive the verifier.
struct jwt_options {
  jwt_alg alg = jwt_alg::hs256;
  std::string key;
  std::optional<std::string> issuer;
  std::optional<std::string> audience;
  std::uint32_t leeway_seconds = 0;
  std::size_t max_token_len = CC_JWT_DEFAULT_MAX_TOKEN_LEN;
  cc_clock_fn clock = nullptr; // Unix ns; nullptr: the system's
  void *clock_user_data = nullptr;
  const jwt_verifier *fallback = nullptr;
};

// An immutable verifier: any number of threads may call verify() at once.
class jwt_verifier {
public:
  // Throws jwt_error JWT_KEY for an unusable key, error INVALID for a bad setting.
  explicit jwt_verifier(const jwt_options &o);
  jwt_alg alg() const {
    return static_cast<jwt_alg>(cc_jwt_verifier_alg(v_.get()));
  }
  // The claims of a token that passes every check; else throws jwt_error with
  // the first failed check's code (error TOO_LARGE over the length cap).
  jwt_claims verify(std::string_view token) const {
    cc_jwt_claims c{};
    check(cc_jwt_verify(v_.get(), token.data(), token.size(), &c));
    return jwt_claims{std::string(c.sub, c.sub_len), c.exp,
                      c.iat < 0 ? std::nullopt : std::optional<std::int64_t>(c.iat)};
  }
  const cc_jwt_verifier *c_ptr() const {
    return v_.get();
  }

private:
  detail::handle<cc_jwt_verifier, cc_jwt_verifier_free> v_;
};

inline jwt_verifier::jwt_verifier(const jwt_options &o) {
  cc_jwt_options *raw = nullptr;
  check(cc_jwt_options_new(&raw));
  detail::handle<cc_jwt_options, cc_jwt_options_free> opt(raw);
  const auto alg = static_cast<cc_jwt_alg>(o.alg);
  if (o.alg == jwt_alg::rs256 || o.alg == jwt_alg::es256)
    check(cc_jwt_options_set_public_key_pem(raw, alg, o.key.data(), o.key.size()));
  else
    check(cc_jwt_options_set_hmac_key(raw, alg, detail::bytes(o.key), o.key.size()));
  if (o.issuer) check(cc_jwt_options_set_issuer(raw, o.issuer->data(), o.issuer->size()));
  if (o.audience)
    check(cc_jwt_options_set_audience(raw, o.audience->data(), o.audience->size()));
  check(cc_jwt_options_set_leeway_seconds(raw, o.leeway_seconds));
  check(cc_jwt_options_set_max_token_len(raw, o.max_token_len));
  check(cc_jwt_options_set_clock(raw, o.clock, o.clock_user_data));
  if (o.fallback) check(cc_jwt_options_set_fallback(raw, o.fallback->c_ptr()));
  cc_jwt_verifier *v = nullptr;
  check(cc_jwt_verifier_new(&v, raw, nullptr));
  v_ = decltype(v_)(v);
}

// Mints an HMAC-signed token whose payload is `claims_json` (development
// logins, tests). Throws jwt_error JWT_KEY, error INVALID.
inline std::string jwt_sign_hmac(jwt_alg alg, std::string_view key,
                                 std::string_view claims_json) {
  std::size_t len = 0;
  const auto a = static_cast<cc_jwt_alg>(alg);
  int rc = cc_jwt_sign_hmac(a, detail::bytes(key), key.size(), claims_json.data(),
                            claims_json.size(), nullptr, 0, &len);
  if (rc != CC_ERR_TOO_LARGE || len == 0) check(rc);
  std::string out(len + 1, '\0');
  check(cc_jwt_sign_hmac(a, detail::bytes(key), key.size(), claims_json.data(),
                         claims_json.size(), out.data(), out.size(), &len));
  out.resize(len);
  return out;
}

// ---- rate limiter ----

// Settings of a rate_limiter; unset ones keep the library's defaults.
struct rate_limiter_options {
  std::optional<std::uint64_t> events, period_ms; // rate: events per period
  std::optional<std::uint32_t> burst;
  std::optional<std::size_t> max_keys;
  cc_clock_fn clock = nullptr; // monotonic ns; nullptr: the system's
  void *clock_user_data = nullptr;
};

// Not thread-safe (one per thread or loop, or a lock around it), as the C one.
class rate_limiter {
public:
  explicit rate_limiter(const rate_limiter_options &o = rate_limiter_options());
  // Takes `cost` events for `key`; throws rate_limited_error (nothing taken),
  // error TOO_LARGE when cost exceeds the burst, INVALID for a bad argument.
  void take(std::string_view key, std::uint32_t cost = 1) {
    std::uint64_t retry = 0;
    int rc = cc_ratelimit_take(rl_.get(), key.data(), key.size(), cost, &retry);
    if (rc == CC_ERR_RATE_LIMITED) throw rate_limited_error(retry);
    check(rc);
  }
  // As take(), but false instead of rate_limited_error.
  bool allow(std::string_view key, std::uint32_t cost = 1) {
    int rc = cc_ratelimit_take(rl_.get(), key.data(), key.size(), cost, nullptr);
    if (rc == CC_ERR_RATE_LIMITED) return false;
    check(rc);
    return true;
  }
  std::size_t size() const {
    return cc_ratelimit_size(rl_.get());
  }

private:
  detail::handle<cc_ratelimit, cc_ratelimit_free> rl_;
};

inline rate_limiter::rate_limiter(const rate_limiter_options &o) {
  cc_ratelimit_options *raw = nullptr;
  check(cc_ratelimit_options_new(&raw));
  detail::handle<cc_ratelimit_options, cc_ratelimit_options_free> opt(raw);
  if (o.events || o.period_ms)
    check(cc_ratelimit_options_set_rate(raw, o.events.value_or(10),
                                        o.period_ms.value_or(1000)));
  if (o.burst) check(cc_ratelimit_options_set_burst(raw, *o.burst));
  if (o.max_keys) check(cc_ratelimit_options_set_max_keys(raw, *o.max_keys));
  check(cc_ratelimit_options_set_clock(raw, o.clock, o.clock_user_data));
  cc_ratelimit *rl = nullptr;
  check(cc_ratelimit_new(&rl, raw, nullptr));
  rl_ = decltype(rl_)(rl);
}

// ---- protocol ----

namespace protocol {

enum class encoding : int { json = CC_ENCODING_JSON, protobuf = CC_ENCODING_PROTOBUF };
enum class frame_kind : int {
  client = CC_PROTOCOL_CLIENT_FRAME,
  server = CC_PROTOCOL_SERVER_FRAME
};

inline std::string subprotocol(encoding e) {
  return cc_protocol_subprotocol(static_cast<cc_encoding>(e));
}

// Decoding limits of one kind of frame; unset values keep the kind's defaults.
// Immutable once made: any number of threads may use it.
class limits {
public:
  struct settings {
    std::optional<std::size_t> max_frame, max_field, max_repeated;
    std::optional<std::uint32_t> max_depth;
    std::optional<bool> allow_unknown;
  };
  explicit limits(frame_kind kind, const settings &s = settings()) : kind_(kind) {
    cc_protocol_limits *raw = nullptr;
    check(cc_protocol_limits_new(&raw, static_cast<cc_protocol_kind>(kind), nullptr));
    l_ = decltype(l_)(raw);
    if (s.max_frame) check(cc_protocol_limits_set_max_frame(raw, *s.max_frame));
    if (s.max_field) check(cc_protocol_limits_set_max_field(raw, *s.max_field));
    if (s.max_repeated) check(cc_protocol_limits_set_max_repeated(raw, *s.max_repeated));
    if (s.max_depth) check(cc_protocol_limits_set_max_depth(raw, *s.max_depth));
    if (s.allow_unknown)
      check(cc_protocol_limits_set_allow_unknown(raw, *s.allow_unknown ? 1 : 0));
  }
  frame_kind kind() const noexcept {
    return kind_;
  }
  const cc_protocol_limits *c_ptr() const {
    return l_.get();
  }

private:
  frame_kind kind_;
  detail::handle<cc_protocol_limits, cc_protocol_limits_free> l_;
};

namespace impl {
inline const cc_protocol_limits *limits_for(frame_kind kind, const limits *l) {
  if (l && l->kind() != kind) throw error(CC_ERR_INVALID, "limits of the other kind");
  return l ? l->c_ptr() : nullptr;
}
} // namespace impl

// Decodes and checks one frame; throws protocol_error (PROTO, PROTO_TYPE,
// PROTO_UNKNOWN) or error (TOO_LARGE, INVALID) with the decoder's explanation.
inline void validate(frame_kind kind, encoding enc, std::string_view data,
                     const limits *l = nullptr) {
  char msg[256] = "";
  // Two statements: `msg` must be read after the call has filled it.
  const int rc = cc_protocol_validate(
      static_cast<cc_protocol_kind>(kind), static_cast<cc_encoding>(enc),
      detail::bytes(data), data.size(), impl::limits_for(kind, l), msg, sizeof msg);
  check(rc, msg);
}

// Validates as validate() and re-encodes the frame in `to` (bytes of the frame;
// UTF-8 text for JSON).
inline std::string transcode(frame_kind kind, encoding from, std::string_view data,
                             encoding to, const limits *l = nullptr) {
  char msg[256] = "";
  cc_buf *buf = nullptr;
  const int rc = cc_protocol_transcode(
      &buf, static_cast<cc_protocol_kind>(kind), static_cast<cc_encoding>(from),
      detail::bytes(data), data.size(), static_cast<cc_encoding>(to),
      impl::limits_for(kind, l), nullptr, msg, sizeof msg);
  check(rc, msg);
  const detail::handle<cc_buf, cc_buf_unref> owned(buf);
  return std::string(reinterpret_cast<const char *>(cc_buf_cdata(buf)), cc_buf_len(buf));
}

} // namespace protocol
} // namespace chatcore

#endif // CHATCORE_HPP
