// The C++ wrapper (<chatcore/chatcore.hpp>) used from an installed prefix with
// nothing but `pkg-config --cflags --libs chatcore`: tests/check_installed.sh
// builds it with g++ and clang++, -std=c++17 -Wall -Wextra -pedantic -Werror, and
// runs it. Each check can fail; exits 0 when all pass.
#include <chatcore/chatcore.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "consumer++: check failed: %s (line %d)\n", #cond, __LINE__); \
      return 1;                                                                          \
    }                                                                                    \
  } while (0)

// Runs `f`, which must throw E with code `code`; what() must start with `prefix`.
template <typename E, typename F>
static bool throws(F &&f, int code, const char *prefix) {
  try {
    f();
  } catch (const E &e) {
    return e.code() == code && std::strncmp(e.what(), prefix, std::strlen(prefix)) == 0;
  } catch (...) {
    return false;
  }
  return false;
}

static std::uint64_t fixed_unix(void *) {
  return UINT64_C(1700000000) * 1000000000u;
}

static std::uint64_t fixed_mono(void *user_data) {
  return *static_cast<std::uint64_t *>(user_data);
}

static_assert(!std::is_copy_constructible_v<chatcore::jwt_verifier>);
static_assert(!std::is_copy_assignable_v<chatcore::rate_limiter>);
static_assert(std::is_nothrow_move_constructible_v<chatcore::jwt_verifier>);
static_assert(std::is_nothrow_move_assignable_v<chatcore::protocol::limits>);

int main() {
  namespace cc = chatcore;
  namespace pr = chatcore::protocol;
  const cc::version_info v = cc::version();
  CHECK(v.protocol == "chatcore.v1" && !v.version.empty());

  const std::string key(32, 'k');
  const std::string token =
      cc::jwt_sign_hmac(cc::jwt_alg::hs256, key, R"({"sub":"alice","exp":1700000060})");
  cc::jwt_options o;
  o.alg = cc::jwt_alg::hs256;
  o.key = key;
  o.clock = fixed_unix;
  cc::jwt_verifier ver(o);
  CHECK(ver.alg() == cc::jwt_alg::hs256);
  const cc::jwt_claims claims = ver.verify(token);
  CHECK(claims.sub == "alice" && claims.exp == 1700000060 && !claims.iat);
  CHECK(throws<cc::jwt_error>([&] { ver.verify("a.b.c"); }, CC_ERR_JWT_MALFORMED,
                              "CC_ERR_JWT_MALFORMED: "));
  o.key = std::string(32, 'x');
  cc::jwt_verifier other(o);
  CHECK(throws<cc::jwt_error>([&] { other.verify(token); }, CC_ERR_JWT_SIGNATURE,
                              "CC_ERR_JWT_SIGNATURE: token signature invalid"));
  o.key = "short";
  CHECK(throws<cc::jwt_error>([&] { cc::jwt_verifier bad(o); }, CC_ERR_JWT_KEY,
                              "CC_ERR_JWT_KEY"));
  CHECK(cc::jwt_alg_from_name("ES256") == cc::jwt_alg::es256);
  CHECK(throws<cc::jwt_error>([] { cc::jwt_alg_from_name("none"); }, CC_ERR_JWT_ALG,
                              "CC_ERR_JWT_ALG"));
  // A moved-from handle throws CLOSED instead of touching freed memory.
  cc::jwt_verifier moved = std::move(ver);
  CHECK(moved.verify(token).sub == "alice");
  CHECK(throws<cc::error>([&] { ver.verify(token); }, CC_ERR_CLOSED, "CC_ERR_CLOSED"));

  std::uint64_t now = UINT64_C(5000000000);
  cc::rate_limiter_options ro;
  ro.events = 2;
  ro.period_ms = 1000;
  ro.burst = 2;
  ro.clock = fixed_mono;
  ro.clock_user_data = &now;
  cc::rate_limiter rl(ro);
  CHECK(rl.allow("ip:1") && rl.allow("ip:1") && !rl.allow("ip:1"));
  try {
    rl.take("ip:1");
    CHECK(false);
  } catch (const cc::rate_limited_error &e) {
    CHECK(e.retry_after_ns() == 500000000u && std::strcmp(e.name(), "RATE_LIMITED") == 0);
  }
  now += 500000000u;
  CHECK(rl.allow("ip:1") && rl.size() == 1);
  CHECK(throws<cc::error>([&] { rl.take("ip:2", 3); }, CC_ERR_TOO_LARGE,
                          "CC_ERR_TOO_LARGE"));
  cc::rate_limiter rl2 = std::move(rl);
  CHECK(throws<cc::error>([&] { rl.size(); }, CC_ERR_CLOSED, "CC_ERR_CLOSED"));
  CHECK(rl2.size() == 1);

  const std::string ping = R"({"requestId":"7","ping":{"clientTimeMs":"1700000000000"}})";
  const std::string pb = pr::transcode(pr::frame_kind::client, pr::encoding::json, ping,
                                       pr::encoding::protobuf);
  CHECK(!pb.empty() && pb != ping);
  CHECK(pr::transcode(pr::frame_kind::client, pr::encoding::protobuf, pb,
                      pr::encoding::json) == ping);
  pr::validate(pr::frame_kind::client, pr::encoding::protobuf, pb);
  CHECK(throws<cc::protocol_error>(
      [] {
        pr::validate(pr::frame_kind::client, pr::encoding::json,
                     R"({"requestId":"1","sendMessage":{"chatId":5}})");
      },
      CC_ERR_PROTO_TYPE,
      "CC_ERR_PROTO_TYPE: wrong type for protocol field: sendMessage.chatId: expected a "
      "string"));
  pr::limits::settings small;
  small.max_frame = 16;
  const pr::limits lim(pr::frame_kind::client, small);
  CHECK(throws<cc::error>(
      [&] { pr::validate(pr::frame_kind::client, pr::encoding::json, ping, &lim); },
      CC_ERR_TOO_LARGE, "CC_ERR_TOO_LARGE"));
  CHECK(throws<cc::error>(
      [&] { pr::validate(pr::frame_kind::server, pr::encoding::json, ping, &lim); },
      CC_ERR_INVALID, "CC_ERR_INVALID"));
  CHECK(pr::subprotocol(pr::encoding::json) == "chatcore.v1.json");

  std::printf("libchatcore %s (C++)\n", v.version.c_str());
  return 0;
}
