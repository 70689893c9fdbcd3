/* The client's address behind trusted proxies, and the key its handshakes are
 * counted under.
 *
 * Addresses are held as 16 bytes, an IPv4 address as its IPv4-mapped IPv6 form
 * (::ffff:a.b.c.d), so that one CIDR test serves both families. */
#ifndef CC_GATEWAY_CLIENT_ADDR_H
#define CC_GATEWAY_CLIENT_ADDR_H

#include <chatcore/common.h>

/* A network: the first `bits` bits of `addr` (the rest are zero). An IPv4
 * network a.b.c.d/n is held as ::ffff:a.b.c.d/(96 + n). */
typedef struct cc_cidr {
  uint8_t addr[16];
  uint8_t bits; /* 0..128 */
} cc_cidr;

/* The longest address text cc_ip_format writes, with its NUL. */
#define CC_IP_TEXT_MAX 46

/* Parses an IPv4 or IPv6 address: `text` (`len` bytes, no NUL needed), with
 * spaces and tabs around it ignored. A bracketed IPv6 address ("[::1]") and a
 * port after an address ("1.2.3.4:80", "[::1]:80") are accepted too, as some
 * proxies write them into X-Forwarded-For. 0 with `out` set, or CC_ERR_INVALID. */
int cc_ip_parse(const char *text, size_t len, uint8_t out[16]);

/* Parses "ADDRESS/BITS" (IPv4 /0..32, IPv6 /0..128) or a bare ADDRESS (one
 * host: /32 or /128), NUL-terminated. Bits past the prefix are cleared
 * ("10.1.2.3/8" is 10.0.0.0/8). 0 with *out set, or CC_ERR_INVALID. */
int cc_cidr_parse(const char *text, cc_cidr *out);

/* 1 when `addr` is inside `net`, else 0. */
int cc_cidr_contains(const cc_cidr *net, const uint8_t addr[16]);

/* `addr` as text into `out` (CC_IP_TEXT_MAX bytes): dotted quad for IPv4 (and
 * IPv4-mapped) addresses, RFC 5952 form for IPv6. */
void cc_ip_format(const uint8_t addr[16], char out[CC_IP_TEXT_MAX]);

/* The key a client's handshakes are counted under, into `out`
 * (CC_IP_TEXT_MAX bytes): an IPv4 address itself; for IPv6 its /64
 * ("2001:db8:1:2::/64"), since one subscriber usually holds a whole /64 and
 * could otherwise take a fresh address for every handshake. */
void cc_ip_limit_key(const uint8_t addr[16], char out[CC_IP_TEXT_MAX]);

/* The client's address for a request that reached us from `peer`: when `peer`
 * is inside one of the `n` `trusted` networks, the right-most address of the
 * X-Forwarded-For values `xff` (`n_xff` header values in the order received,
 * each a comma-separated list) that is not itself trusted, the proxies' own
 * hops being skipped; when every listed address is trusted, the left-most. An
 * entry that is not an address stops the walk: the hop that wrote it is the
 * client. From an untrusted `peer` X-Forwarded-For is ignored (anyone can
 * write it), and so it is with no trusted networks: the client is `peer`.
 * Writes the client into `out` and returns 1 when it differs from `peer`,
 * 0 when it is `peer`. */
int cc_forwarded_client(const cc_cidr *trusted, size_t n, const uint8_t peer[16],
                        const cc_str *xff, size_t n_xff, uint8_t out[16]);

/* The longest PROXY protocol header read (a v2 header with 520 bytes of
 * addresses and TLVs); longer ones are refused. */
#define CC_PROXY_HEADER_MAX 536

/* Parses a PROXY protocol header, version 1 ("PROXY TCP4 203.0.113.7 10.0.0.1
 * 51000 443\r\n") or 2 (binary), at the start of `data` (`len` bytes, borrowed
 * for the call). Returns the header's length, with *has_addr 1 and `addr` the
 * source address when it names one (TCP over IPv4 or IPv6), *has_addr 0 when
 * it does not (v1 UNKNOWN, v2 LOCAL or another family: the connection is the
 * proxy's own); 0 when `data` is a prefix of a header (more bytes needed);
 * CC_ERR_NOT_FOUND when `data` does not start with one; CC_ERR_INVALID when
 * it is malformed or longer than CC_PROXY_HEADER_MAX. */
int cc_proxy_header_parse(const uint8_t *data, size_t len, uint8_t addr[16],
                          int *has_addr);

#endif
