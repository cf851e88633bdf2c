/*
 * `rpcnet cbor`: converts between CBOR (hex or binary) and diagnostic
 * notation or JSON, through the library's value tree (wire/value.h,
 * wire/diag.h, wire/json.h).
 *
 * Design notes
 * - Input is the argument, or stdin when there is none (or it is "-").
 * - CBOR is decoded with the value mapping's rules (strict by default:
 *   undefined and simple values are refused unless --lenient); text input
 *   is parsed, encoded deterministically and decoded again, so the tool
 *   rejects exactly what the library would reject.
 * - Output is the canonical form of the value (maps in deterministic key
 *   order), and ends with a newline, except --to bin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "wire/diag.h"
#include "wire/json.h"
#include "wire/utf8.h"
#include "wire/value.h"

enum fmt { F_AUTO, F_HEX, F_BIN, F_DIAG, F_JSON };

static const char *fmt_names[] = {"auto", "hex", "bin", "diag", "json"};

void cli_cbor_usage(FILE *out) {
  fprintf(out,
          "usage: rpcnet cbor [options] [INPUT]\n\n"
          "Converts between CBOR (hex or binary) and CBOR diagnostic notation or JSON.\n"
          "INPUT is the data itself; without it, or with '-', stdin is read.\n\n"
          "options:\n"
          "  -f, --from FMT  input format: auto (default), hex, bin, diag, json\n"
          "                  auto: hex when the input is an even number of hex digits\n"
          "                  (whitespace ignored), bin when it is not UTF-8 text, else\n"
          "                  JSON when it parses as JSON, else diagnostic notation\n"
          "  -t, --to FMT    output format: diag, json, hex, bin; default diag for CBOR\n"
          "                  input and hex for text input\n"
          "  -s, --seq       CBOR input is a CBOR sequence (RFC 8742): convert every item,\n"
          "                  one per line\n"
          "  -p, --pretty    indent JSON output\n"
          "  -l, --lenient   accept undefined and simple values (outside the value mapping)\n"
          "  -h, --help      this text\n\n"
          "CBOR to JSON follows RFC 8949 section 6.1: byte strings become base64url text,\n"
          "tags are dropped, NaN and infinities become null, non-text map keys become\n"
          "their diagnostic notation.\n\n"
          "examples:\n"
          "  rpcnet cbor a26161016162820203          -> {\"a\": 1, \"b\": [2, 3]}\n"
          "  rpcnet cbor -t json 83010203            -> [1,2,3]\n"
          "  rpcnet cbor '{\"a\": [1, 2.5]}'           -> a161618201f94100\n"
          "  rpcnet cbor -f diag \"[_ 1, h'ff']\"      -> 820141ff\n"
          "  printf '\\x83\\x01\\x02\\x03' | rpcnet cbor -f bin\n\n"
          "exit status: 0 success, 1 invalid input, 2 usage error\n");
}

static int parse_fmt(const char *s, enum fmt *f) {
  for (int i = 0; i < 5; i++)
    if (strcmp(s, fmt_names[i]) == 0) {
      *f = (enum fmt)i;
      return 0;
    }
  return -1;
}

static int read_all(FILE *in, rpci_buf *b) {
  uint8_t tmp[65536];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, in)) > 0)
    if (rpci_buf_append(b, tmp, n)) return -1;
  return ferror(in) ? -1 : 0;
}

static int hexv(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes hex (whitespace ignored) into out. Returns 0, or -1 when the text
 * is not an even number of hex digits. */
static int unhex(const uint8_t *s, size_t n, rpci_buf *out) {
  int half = -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') continue;
    int d = hexv(s[i]);
    if (d < 0) return -1;
    if (half < 0) {
      half = d;
    } else {
      if (rpci_buf_push(out, (uint8_t)(half << 4 | d))) return -1;
      half = -1;
    }
  }
  return half < 0 ? 0 : -1;
}

static enum fmt detect(const uint8_t *s, size_t n) {
  rpci_buf tmp = RPCI_BUF_INIT;
  int hex = unhex(s, n, &tmp) == 0 && tmp.len > 0;
  rpci_buf_free(&tmp);
  if (hex) return F_HEX;
  if (memchr(s, 0, n) || !rpci_utf8_valid(s, n)) return F_BIN;
  rpci_value *v = NULL;
  if (rpci_json_parse((const char *)s, n, &v, NULL, NULL) == 0) {
    rpci_value_free(v);
    return F_JSON;
  }
  return F_DIAG;
}

static int emit(const rpci_value *v, const rpci_buf *cbor, enum fmt to, int pretty) {
  rpci_buf out = RPCI_BUF_INIT;
  int e = 0;
  switch (to) {
    case F_DIAG:
      e = rpci_diag_write(v, &out);
      break;
    case F_JSON:
      e = rpci_json_write(v, &out, pretty);
      break;
    case F_HEX:
      for (size_t i = 0; !e && i < cbor->len; i++) {
        char h[3];
        snprintf(h, sizeof h, "%02x", cbor->data[i]);
        e = rpci_buf_append(&out, h, 2);
      }
      break;
    default:
      e = rpci_buf_append(&out, cbor->data, cbor->len);
      break;
  }
  if (!e && to != F_BIN) e = rpci_buf_push(&out, '\n');
  if (!e && out.len && fwrite(out.data, 1, out.len, stdout) != out.len) e = -1;
  rpci_buf_free(&out);
  if (e) fprintf(stderr, "rpcnet cbor: cannot write output\n");
  return e ? CLI_FAIL : CLI_OK;
}

/* CBOR bytes in, one or (with seq) more items out. */
static int from_cbor(const rpci_buf *in, enum fmt to, int seq, int lenient, int pretty) {
  rpci_vdec_opts o = {.allow_simple = lenient};
  size_t pos = 0;
  do {
    rpci_value *v = NULL;
    size_t used = 0;
    int e;
    if (seq) {
      e = rpci_value_decode_one(in->data + pos, in->len - pos, &o, &v, &used);
    } else {
      e = rpci_value_decode(in->data, in->len, &o, &v, &used);
      if (!e) used = in->len;
    }
    if (e) {
      fprintf(stderr, "rpcnet cbor: invalid CBOR at offset %zu: %s%s\n", pos + used,
              rpci_verr_name(e), e == RPCI_VERR_UNSUPPORTED ? " (try --lenient)" : "");
      return CLI_FAIL;
    }
    /* Print the canonical form: encode, decode again (maps in order). */
    rpci_buf canon = RPCI_BUF_INIT;
    rpci_value *cv = NULL;
    int rc = CLI_FAIL;
    if (rpci_value_encode(v, &canon) == 0 &&
        rpci_value_decode(canon.data, canon.len, &o, &cv, NULL) == 0)
      rc = emit(cv, &canon, to, pretty);
    else
      fprintf(stderr, "rpcnet cbor: cannot re-encode the value\n");
    rpci_buf_free(&canon);
    rpci_value_free(cv);
    rpci_value_free(v);
    if (rc) return rc;
    pos += used;
  } while (seq && pos < in->len);
  return CLI_OK;
}

static int from_text(const rpci_buf *in, enum fmt from, enum fmt to, int lenient, int pretty) {
  rpci_value *v = NULL;
  size_t off = 0;
  const char *msg = "";
  const char *txt = in->data ? (const char *)in->data : "";
  int e = from == F_JSON ? rpci_json_parse(txt, in->len, &v, &off, &msg)
                         : rpci_diag_parse(txt, in->len, &v, &off, &msg);
  if (e) {
    fprintf(stderr, "rpcnet cbor: invalid %s at offset %zu: %s%s%s\n",
            from == F_JSON ? "JSON" : "diagnostic notation", off, rpci_verr_name(e),
            msg && *msg ? ": " : "", msg ? msg : "");
    return CLI_FAIL;
  }
  rpci_buf cbor = RPCI_BUF_INIT;
  e = rpci_value_encode(v, &cbor);
  rpci_value_free(v);
  v = NULL;
  if (!e) { /* round trip through the decoder: same checks as the wire */
    rpci_vdec_opts o = {.allow_simple = lenient};
    e = rpci_value_decode(cbor.data, cbor.len, &o, &v, NULL);
  }
  int rc = CLI_FAIL;
  if (e)
    fprintf(stderr, "rpcnet cbor: value not accepted: %s%s\n", rpci_verr_name(e),
            e == RPCI_VERR_UNSUPPORTED ? " (try --lenient)" : "");
  else
    rc = emit(v, &cbor, to, pretty);
  rpci_value_free(v);
  rpci_buf_free(&cbor);
  return rc;
}

int cli_cbor_main(int argc, char **argv) {
  enum fmt from = F_AUTO, to = F_AUTO;
  int seq = 0, lenient = 0, pretty = 0;
  const char *input = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      cli_cbor_usage(stdout);
      return CLI_OK;
    } else if (strcmp(a, "-s") == 0 || strcmp(a, "--seq") == 0) {
      seq = 1;
    } else if (strcmp(a, "-l") == 0 || strcmp(a, "--lenient") == 0) {
      lenient = 1;
    } else if (strcmp(a, "-p") == 0 || strcmp(a, "--pretty") == 0) {
      pretty = 1;
    } else if (strcmp(a, "-f") == 0 || strcmp(a, "--from") == 0 || strcmp(a, "-t") == 0 ||
               strcmp(a, "--to") == 0) {
      enum fmt *f = a[1] == 'f' || a[2] == 'f' ? &from : &to;
      if (i + 1 >= argc || parse_fmt(argv[i + 1], f) || (f == &to && *f == F_AUTO)) {
        fprintf(stderr, "rpcnet cbor: %s needs one of %s\n", a,
                f == &to ? "diag, json, hex, bin" : "auto, hex, bin, diag, json");
        return CLI_USAGE;
      }
      i++;
    } else if (strcmp(a, "--") == 0 && i + 1 < argc && !input) {
      input = argv[++i];
    } else if (a[0] == '-' && a[1] != 0) {
      fprintf(stderr, "rpcnet cbor: unknown option %s\n", a);
      cli_cbor_usage(stderr);
      return CLI_USAGE;
    } else if (!input) {
      input = a;
    } else {
      fprintf(stderr, "rpcnet cbor: more than one INPUT\n");
      return CLI_USAGE;
    }
  }
  rpci_buf raw = RPCI_BUF_INIT;
  if (!input || strcmp(input, "-") == 0) {
    if (read_all(stdin, &raw)) {
      fprintf(stderr, "rpcnet cbor: cannot read stdin\n");
      rpci_buf_free(&raw);
      return CLI_FAIL;
    }
  } else if (rpci_buf_append(&raw, input, strlen(input))) {
    return CLI_FAIL;
  }
  if (from == F_AUTO) from = detect(raw.data ? raw.data : (const uint8_t *)"", raw.len);
  int cbor_in = from == F_HEX || from == F_BIN;
  if (to == F_AUTO) to = cbor_in ? F_DIAG : F_HEX;
  if (seq && !cbor_in) {
    fprintf(stderr, "rpcnet cbor: --seq needs CBOR input (hex or bin)\n");
    rpci_buf_free(&raw);
    return CLI_USAGE;
  }
  int rc;
  if (from == F_HEX) {
    rpci_buf bin = RPCI_BUF_INIT;
    if (unhex(raw.data ? raw.data : (const uint8_t *)"", raw.len, &bin)) {
      fprintf(stderr, "rpcnet cbor: input is not an even number of hex digits\n");
      rc = CLI_FAIL;
    } else {
      rc = from_cbor(&bin, to, seq, lenient, pretty);
    }
    rpci_buf_free(&bin);
  } else if (from == F_BIN) {
    rc = from_cbor(&raw, to, seq, lenient, pretty);
  } else {
    rc = from_text(&raw, from, to, lenient, pretty);
  }
  rpci_buf_free(&raw);
  return rc;
}
