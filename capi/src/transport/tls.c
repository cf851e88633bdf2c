/* TLS for QUIC through GnuTLS: see tls.h. */
#include "transport/tls.h"

#include <arpa/inet.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/log.h"

struct rpci_tls_ctx {
  atomic_int refs;
  int is_server;
  int verify;
  gnutls_certificate_credentials_t cred;
};

/* TLS 1.3 only, AEADs QUIC supports, no middlebox compatibility mode. */
static const char priority[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:"
    "%DISABLE_TLS13_COMPAT_MODE";

static int load_pem(gnutls_certificate_credentials_t cred, const char *cert_file,
                    const char *key_file, const char *cert_pem, const char *key_pem) {
  int rv;
  if (cert_pem || key_pem) {
    if (!cert_pem || !key_pem) {
      rpci_set_error("TLS: cert_pem and key_pem must be given together");
      return -1;
    }
    gnutls_datum_t c = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
    gnutls_datum_t k = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
    rv = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
    if (rv < 0) {
      rpci_set_error("TLS: cannot load cert_pem/key_pem: %s", gnutls_strerror(rv));
      return -1;
    }
    return 0;
  }
  if (!cert_file && !key_file) return 0;
  if (!cert_file || !key_file) {
    rpci_set_error("TLS: cert_file and key_file must be given together");
    return -1;
  }
  rv = gnutls_certificate_set_x509_key_file(cred, cert_file, key_file, GNUTLS_X509_FMT_PEM);
  if (rv < 0) {
    rpci_set_error("TLS: cannot load cert_file '%s' / key_file '%s': %s", cert_file, key_file,
                   gnutls_strerror(rv));
    return -1;
  }
  return 0;
}

static int load_ca(gnutls_certificate_credentials_t cred, const rpci_options *o, int required) {
  int rv;
  if (o->ca_pem) {
    gnutls_datum_t d = {(unsigned char *)o->ca_pem, (unsigned)strlen(o->ca_pem)};
    rv = gnutls_certificate_set_x509_trust_mem(cred, &d, GNUTLS_X509_FMT_PEM);
    if (rv <= 0) {
      rpci_set_error("TLS: ca_pem holds no usable certificate%s%s", rv < 0 ? ": " : "",
                     rv < 0 ? gnutls_strerror(rv) : "");
      return -1;
    }
  } else if (o->ca_file) {
    rv = gnutls_certificate_set_x509_trust_file(cred, o->ca_file, GNUTLS_X509_FMT_PEM);
    if (rv <= 0) {
      rpci_set_error("TLS: cannot load ca_file '%s'%s%s", o->ca_file, rv < 0 ? ": " : "",
                     rv < 0 ? gnutls_strerror(rv) : " (no certificate in it)");
      return -1;
    }
  } else if (required) {
    rv = gnutls_certificate_set_x509_system_trust(cred);
    if (rv < 0) {
      rpci_set_error("TLS: no ca_file/ca_pem and no system trust store: %s", gnutls_strerror(rv));
      return -1;
    }
  }
  return 0;
}

rpci_tls_ctx *rpci_tls_ctx_new(int is_server, const rpci_options *o) {
  rpci_tls_ctx *t = calloc(1, sizeof *t);
  if (!t) {
    rpci_set_error("out of memory");
    return NULL;
  }
  atomic_init(&t->refs, 1);
  t->is_server = is_server;
  if (gnutls_certificate_allocate_credentials(&t->cred) < 0) {
    free(t);
    rpci_set_error("TLS: cannot allocate credentials");
    return NULL;
  }
  if (is_server && !o->cert_pem && !o->cert_file) {
    rpci_set_error("TLS: a server needs cert_file/key_file or cert_pem/key_pem");
    goto fail;
  }
  if (load_pem(t->cred, o->cert_file, o->key_file, o->cert_pem, o->key_pem) != 0) goto fail;
  t->verify = is_server ? o->require_client_cert : o->verify_peer;
  if (is_server && t->verify && !o->ca_file && !o->ca_pem) {
    rpci_set_error("TLS: require_client_cert needs ca_file or ca_pem");
    goto fail;
  }
  if (t->verify && load_ca(t->cred, o, !is_server) != 0) goto fail;
  return t;
fail:
  gnutls_certificate_free_credentials(t->cred);
  free(t);
  return NULL;
}

void rpci_tls_ctx_ref(rpci_tls_ctx *t) { atomic_fetch_add(&t->refs, 1); }

void rpci_tls_ctx_unref(rpci_tls_ctx *t) {
  if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
  gnutls_certificate_free_credentials(t->cred);
  free(t);
}

/* SSLKEYLOGFILE: NSS key log lines "LABEL <client_random> <secret>". */
static pthread_mutex_t keylog_mu = PTHREAD_MUTEX_INITIALIZER;

static void hex(char *out, const unsigned char *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = 0;
}

static int keylog_cb(gnutls_session_t s, const char *label, const gnutls_datum_t *secret) {
  const char *path = getenv("SSLKEYLOGFILE");
  if (!path || !*path || secret->size > 64) return 0;
  gnutls_datum_t crandom, srandom;
  gnutls_session_get_random(s, &crandom, &srandom);
  char r[2 * 32 + 1], k[2 * 64 + 1];
  if (crandom.size != 32) return 0;
  hex(r, crandom.data, 32);
  hex(k, secret->data, secret->size);
  pthread_mutex_lock(&keylog_mu);
  FILE *f = fopen(path, "a");
  if (f) {
    fprintf(f, "%s %s %s\n", label, r, k);
    fclose(f);
  }
  pthread_mutex_unlock(&keylog_mu);
  return 0;
}

static int is_ip_literal(const char *name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

int rpci_tls_session_new(rpci_tls_ctx *t, gnutls_session_t *out, const char *server_name,
                         ngtcp2_crypto_conn_ref *ref) {
  gnutls_session_t s;
  unsigned flags = (t->is_server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_END_OF_EARLY_DATA;
  int rv = gnutls_init(&s, flags);
  if (rv < 0) {
    rpci_set_error("TLS: gnutls_init: %s", gnutls_strerror(rv));
    return -1;
  }
  if ((t->is_server ? ngtcp2_crypto_gnutls_configure_server_session(s)
                    : ngtcp2_crypto_gnutls_configure_client_session(s)) != 0) {
    rpci_set_error("TLS: cannot configure the QUIC session");
    goto fail;
  }
  if ((rv = gnutls_priority_set_direct(s, priority, NULL)) < 0 ||
      (rv = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->cred)) < 0) {
    rpci_set_error("TLS: session setup: %s", gnutls_strerror(rv));
    goto fail;
  }
  gnutls_datum_t alpn = {(unsigned char *)RPCI_ALPN, sizeof RPCI_ALPN - 1};
  gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY);
  gnutls_session_set_ptr(s, ref);
  gnutls_session_set_keylog_function(s, keylog_cb);
  if (t->is_server) {
    if (t->verify) {
      gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
      gnutls_session_set_verify_cert(s, NULL, 0);
    }
  } else {
    if (server_name && *server_name && !is_ip_literal(server_name))
      gnutls_server_name_set(s, GNUTLS_NAME_DNS, server_name, strlen(server_name));
    if (t->verify) gnutls_session_set_verify_cert(s, server_name, 0);
  }
  *out = s;
  return 0;
fail:
  gnutls_deinit(s);
  return -1;
}

void rpci_tls_describe_failure(gnutls_session_t s, int tls_alert, char *buf, size_t len) {
  unsigned status = gnutls_session_get_verify_cert_status(s);
  if (status) {
    gnutls_datum_t txt = {NULL, 0};
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) == 0) {
      snprintf(buf, len, "TLS certificate verification failed: %s", (char *)txt.data);
      gnutls_free(txt.data);
      return;
    }
    snprintf(buf, len, "TLS certificate verification failed (status 0x%x)", status);
    return;
  }
  if (tls_alert)
    snprintf(buf, len, "TLS handshake failed: alert %d (%s)", tls_alert,
             gnutls_alert_get_strname((gnutls_alert_description_t)tls_alert)
                 ? gnutls_alert_get_strname((gnutls_alert_description_t)tls_alert)
                 : "unknown");
  else
    snprintf(buf, len, "TLS handshake failed");
}

void rpci_tls_peer_subject(gnutls_session_t s, char *buf, size_t len) {
  buf[0] = 0;
  unsigned n = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
  if (!certs || n == 0) return;
  gnutls_x509_crt_t crt;
  if (gnutls_x509_crt_init(&crt) < 0) return;
  if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0) {
    size_t sz = len;
    if (gnutls_x509_crt_get_dn(crt, buf, &sz) < 0) buf[0] = 0;
  }
  gnutls_x509_crt_deinit(crt);
}
