/*
 * The tag filter of cluster calls: see route.h for the syntax.
 *
 * Design notes
 * - Terms are separated by commas and all must match. Each term is "k=v",
 *   "k!=v" or "k". Blanks (spaces, tabs) around a term, a key or a value are
 *   trimmed, so "zone = eu , gpu" is "zone=eu,gpu"; blanks inside a key or a
 *   value are kept. A value may be empty ("k=" wants the tag present and
 *   empty). There is no escaping: keys cannot hold ',', '=' or '!', values
 *   cannot hold ',' or '='.
 * - Errors (rpci_filter_parse returns NULL, err says which term): an empty
 *   term ("a,,b", a trailing comma), an empty key ("=v"), '!' in a key
 *   ("k!" or "a!b=c"), '=' in a value ("k==v", "k=v=w").
 * - The parsed filter is one allocation for the terms plus one copy of the
 *   text they point into; matching never allocates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/route.h"

enum { TERM_HAS, TERM_EQ, TERM_NE };

typedef struct fterm {
  const char *key, *value; /* into the filter's text copy */
  int op;
} fterm;

struct rpci_filter {
  size_t n;
  fterm *terms;
  char *text;
};

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Trims blanks in place; returns the start of the trimmed text. */
static char *trim(char *s) {
  while (is_blank(*s)) s++;
  size_t n = strlen(s);
  while (n && is_blank(s[n - 1])) s[--n] = 0;
  return s;
}

/* Parses one NUL-terminated term. Returns NULL or what is wrong. */
static const char *parse_term(char *s, fterm *t) {
  s = trim(s);
  if (!*s) return "empty term";
  char *eq = strchr(s, '=');
  t->op = TERM_HAS;
  t->value = NULL;
  if (eq) {
    t->op = TERM_EQ;
    if (eq > s && eq[-1] == '!') {
      t->op = TERM_NE;
      eq[-1] = 0;
    }
    *eq = 0;
    t->value = trim(eq + 1);
    if (strchr(t->value, '=')) return "'=' in a value";
  }
  t->key = trim(s);
  if (!*t->key) return "empty key";
  if (strchr(t->key, '!')) return "'!' in a key";
  return NULL;
}

rpci_filter *rpci_filter_parse(const char *text, char *err, size_t errlen) {
  rpci_filter *f = calloc(1, sizeof *f);
  if (f) f->text = strdup(text ? text : "");
  if (!f || !f->text) {
    if (err && errlen) snprintf(err, errlen, "out of memory");
    rpci_filter_free(f);
    return NULL;
  }
  char *s = trim(f->text);
  if (!*s) return f; /* matches everything */
  size_t max = 1;
  for (const char *c = s; *c; c++) max += *c == ',';
  f->terms = calloc(max, sizeof *f->terms);
  if (!f->terms) {
    if (err && errlen) snprintf(err, errlen, "out of memory");
    rpci_filter_free(f);
    return NULL;
  }
  for (;;) {
    char *comma = strchr(s, ',');
    if (comma) *comma = 0;
    const char *bad = parse_term(s, &f->terms[f->n]);
    if (bad) {
      if (err && errlen) snprintf(err, errlen, "filter term %zu: %s", f->n + 1, bad);
      rpci_filter_free(f);
      return NULL;
    }
    f->n++;
    if (!comma) return f;
    s = comma + 1;
  }
}

void rpci_filter_free(rpci_filter *f) {
  if (!f) return;
  free(f->terms);
  free(f->text);
  free(f);
}

/* 1 when some tag has key k (and value v, when v is not NULL). */
static int has_tag(const char *k, const char *v, const char *const *keys, const char *const *values,
                   size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(keys[i], k) == 0 && (!v || strcmp(values[i], v) == 0)) return 1;
  return 0;
}

int rpci_filter_match(const rpci_filter *f, const char *const *keys, const char *const *values,
                      size_t n) {
  if (!f) return 1;
  for (size_t i = 0; i < f->n; i++) {
    const fterm *t = &f->terms[i];
    int has = has_tag(t->key, t->value, keys, values, n);
    if (t->op == TERM_NE ? has : !has) return 0;
  }
  return 1;
}
