/* TLS in front of the gateway: OpenSSL 3 with memory BIOs.
 *
 * Ciphertext read from the socket goes into the read BIO; SSL_read turns it into
 * plaintext for cc_conn_recv. Output is gathered from the gateway's queue into
 * 16 KiB chunks (one TLS record each, rather than one record per small frame),
 * encrypted with SSL_write into the write BIO, and the ciphertext leaves through
 * the same one-write-in-flight path as plain TCP. Memory BIOs keep their largest
 * size, so an idle connection's BIOs are replaced once they have grown, and
 * SSL_MODE_RELEASE_BUFFERS lets OpenSSL drop its record buffers between uses. */
#include <chatcore/error.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

#include "transport/uv/uv_internal.h"

/* TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are all fine). */
#define TLS12_CIPHERS                                                                    \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                           \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                           \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* A BIO that grew past this is replaced once empty. */
#define BIO_KEEP_BYTES (16 * 1024)

static void set_error(char *error, size_t cap, const char *fmt, const char *file,
                      const char *detail) {
  if (error && cap) snprintf(error, cap, fmt, file, detail);
}

/* The innermost OpenSSL reason, for error messages. */
static const char *ssl_reason(void) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  return r ? r : "unknown error";
}

static int readable(const char *file, char *error, size_t cap) {
  FILE *f = fopen(file, "rb");
  if (!f) {
    set_error(error, cap, "%s: %s", file, strerror(errno));
    return 0;
  }
  fclose(f);
  return 1;
}

/* Encrypted keys would make OpenSSL prompt on the terminal: refuse instead. */
static int no_password(char *buf, int size, int rwflag, void *ud) {
  (void)buf, (void)size, (void)rwflag, (void)ud;
  return -1;
}

SSL_CTX *cc_uv_tls_ctx_new(const char *cert_file, const char *key_file, int *rv,
                           char *error, size_t error_cap) {
  *rv = CC_ERR_IO;
  if (!readable(cert_file, error, error_cap) || !readable(key_file, error, error_cap))
    return NULL;
  ERR_clear_error();
  *rv = CC_ERR_INVALID;
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  EVP_PKEY *key = NULL;
  BIO *kb = NULL;
  if (!ctx) {
    *rv = CC_ERR_NOMEM;
    set_error(error, error_cap, "%s: %s", "TLS context", ssl_reason());
    goto fail;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  /* Resumption through (stateless) tickets only: a server-side cache would grow
   * with every handshake. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_default_passwd_cb(ctx, no_password);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    set_error(error, error_cap, "%s: not a usable PEM certificate chain (%s)", cert_file,
              ssl_reason());
    goto fail;
  }
  /* Read the key ourselves, so a key that does not match the certificate gets
   * its own message rather than OpenSSL's "key values mismatch". */
  kb = BIO_new_file(key_file, "rb");
  if (kb) key = PEM_read_bio_PrivateKey(kb, NULL, no_password, NULL);
  if (!key) {
    set_error(error, error_cap,
              "%s: not a usable PEM private key (%s; encrypted keys are not supported)",
              key_file, ssl_reason());
    goto fail;
  }
  if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) != 1) {
    if (error && error_cap)
      snprintf(error, error_cap, "%s: private key does not match the certificate in %s",
               key_file, cert_file);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    set_error(error, error_cap, "%s: private key unusable (%s)", key_file, ssl_reason());
    goto fail;
  }
  EVP_PKEY_free(key);
  BIO_free(kb);
  ERR_clear_error();
  *rv = 0;
  return ctx;
fail:
  EVP_PKEY_free(key);
  BIO_free(kb);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return NULL;
}

static BIO *mem_bio(void) {
  BIO *b = BIO_new(BIO_s_mem());
  /* Empty means "wait for more", not end of file. */
  if (b) BIO_set_mem_eof_return(b, -1);
  return b;
}

SSL *cc_uv_tls_new(SSL_CTX *ctx) {
  SSL *ssl = SSL_new(ctx);
  BIO *rb = mem_bio(), *wb = mem_bio();
  if (!ssl || !rb || !wb) {
    SSL_free(ssl);
    BIO_free(rb);
    BIO_free(wb);
    ERR_clear_error();
    return NULL;
  }
  SSL_set_bio(ssl, rb, wb);
  SSL_set_accept_state(ssl);
  return ssl;
}

static int bio_grown(BIO *b) {
  BUF_MEM *bm = NULL;
  return BIO_ctrl_pending(b) == 0 && BIO_get_mem_ptr(b, &bm) == 1 && bm &&
         bm->max > BIO_KEEP_BYTES;
}

/* An idle connection should not keep the size of its largest message. */
static void shrink_bios(SSL *ssl) {
  BIO *b;
  if (bio_grown(SSL_get_rbio(ssl)) && (b = mem_bio())) SSL_set0_rbio(ssl, b);
  if (bio_grown(SSL_get_wbio(ssl)) && (b = mem_bio())) SSL_set0_wbio(ssl, b);
}

int cc_uv_tls_recv(cc_uv_conn *c, const uint8_t *data, size_t len) {
  cc_uv_server *s = cc_uv_conn_server(c);
  if (len > 0 && BIO_write(SSL_get_rbio(c->ssl), data, (int)len) != (int)len)
    return CC_ERR_NOMEM;
  /* SSL_get_error reads the thread's error queue: it must start empty. */
  ERR_clear_error();
  if (!SSL_is_init_finished(c->ssl)) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ) return 0;
      s->stats.tls_handshake_failures++;
      ERR_clear_error();
      return CC_ERR_IO;
    }
  }
  /* `data` was copied into the BIO: the shared read buffer is free for plaintext. */
  while (cc_conn_want_read(c->conn)) {
    size_t got = 0;
    ERR_clear_error();
    int r = SSL_read_ex(c->ssl, s->read_buf, sizeof s->read_buf, &got);
    if (r == 1) {
      int rv = cc_conn_recv(c->conn, s->read_buf, got);
      if (rv < 0) return rv;
      continue;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify */
      c->eof = 1;
      break;
    }
    ERR_clear_error();
    return CC_ERR_IO;
  }
  shrink_bios(c->ssl);
  return 0;
}

int cc_uv_tls_has_input(const cc_uv_conn *c) {
  return SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(SSL_get_rbio(c->ssl)) > 0;
}

/* Copies up to `cap` bytes of the gateway's pending output into `out`. */
static size_t gather(cc_uv_conn *c, uint8_t *out, size_t cap) {
  cc_uv_server *s = cc_uv_conn_server(c);
  size_t n = cc_conn_out_iov(c->conn, s->iov, CC_UV_MAX_IOV), got = 0;
  for (size_t i = 0; i < n && got < cap; i++) {
    size_t k = s->iov[i].len < cap - got ? s->iov[i].len : cap - got;
    memcpy(out + got, s->iov[i].base, k);
    got += k;
  }
  return got;
}

int cc_uv_tls_flush(cc_uv_conn *c) {
  cc_uv_server *s = cc_uv_conn_server(c);
  while (!c->wr) {
    BIO *wb = SSL_get_wbio(c->ssl);
    /* Encrypt about one socket write's worth per round, so that a slow reader's
     * backlog stays in the gateway's queue, where its cap applies. */
    while (SSL_is_init_finished(c->ssl) && BIO_ctrl_pending(wb) < sizeof s->write_buf &&
           cc_conn_out_bytes(c->conn) > 0) {
      size_t n = gather(c, s->plain_buf, sizeof s->plain_buf), w = 0;
      ERR_clear_error();
      if (SSL_write_ex(c->ssl, s->plain_buf, n, &w) != 1 || w != n) {
        ERR_clear_error();
        return CC_ERR_IO;
      }
      cc_conn_out_consumed(c->conn, n);
    }
    size_t pending = BIO_ctrl_pending(wb);
    if (pending == 0) break;
    int n =
        BIO_read(wb, s->write_buf,
                 (int)(pending < sizeof s->write_buf ? pending : sizeof s->write_buf));
    if (n <= 0) return CC_ERR_IO;
    int rv = cc_uv_conn_write_bytes(c, s->write_buf, (size_t)n);
    if (rv < 0) return rv;
  }
  if (!c->wr) shrink_bios(c->ssl);
  return 0;
}

void cc_uv_tls_shutdown(cc_uv_conn *c) {
  cc_uv_server *s = cc_uv_conn_server(c);
  ERR_clear_error();
  if (SSL_is_init_finished(c->ssl)) SSL_shutdown(c->ssl);
  ERR_clear_error();
  /* close_notify, or the alert a failed handshake left: one try, no waiting. */
  BIO *wb = SSL_get_wbio(c->ssl);
  size_t pending = BIO_ctrl_pending(wb);
  if (pending == 0 || c->wr) return;
  int n = BIO_read(wb, s->write_buf,
                   (int)(pending < sizeof s->write_buf ? pending : sizeof s->write_buf));
  if (n <= 0) return;
  uv_buf_t b = uv_buf_init((char *)s->write_buf, (unsigned)n);
  s->stats.writes++;
  uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}
