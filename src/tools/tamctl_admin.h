/*
 * tamctl's admin API commands (tenant, anchor, device, component, policy): shared state of
 * the files tamctl_admin*.c, the blocking HTTP client (tamctl_http.c) and the table printer
 * (tamctl_table.c).
 *
 * Exit statuses of every admin command: 0 success, 1 the API answered with an error (or an
 * answer tamctl cannot read), 2 usage error (bad arguments, unreadable local file, missing
 * token), 3 the admin API is unreachable (connect, TLS, timeout).
 */
#ifndef TAM_TOOLS_TAMCTL_ADMIN_H
#define TAM_TOOLS_TAMCTL_ADMIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TAMCTL_EXIT_API         1
#define TAMCTL_EXIT_USAGE       2
#define TAMCTL_EXIT_UNREACHABLE 3

#define TAMCTL_DEFAULT_ADMIN "http://127.0.0.1:9080"
#define TAMCTL_TOKEN_MAX     512
#define TAMCTL_RESPONSE_MAX  (16u << 20)

/* ---- blocking HTTP client (tamctl_http.c) ---- */

struct tamctl_http; /* opaque: a libuv loop and one tam_httpc pool */

/* An answer, owned by the caller: release with tamctl_reply_finish(). */
struct tamctl_reply {
    int status;
    uint8_t *body; /* NUL-terminated copy (the NUL is not counted in len) */
    size_t len;
    char ctype[128]; /* Content-Type without parameters, lower case; "" if absent */
};

void tamctl_reply_finish(struct tamctl_reply *r);

/*
 * Opens a client for the admin base URL (http or https; any path is a prefix of /v1).
 * cacert: PEM file of trusted CAs, required for https. token: borrowed, may be NULL.
 * Returns 0, or an exit status after printing the reason.
 */
int tamctl_http_open(const char *url, const char *cacert, const char *token,
                     struct tamctl_http **out);
/* Closes the pool and the loop; NULL-safe. */
void tamctl_http_close(struct tamctl_http *h);

/*
 * One request; blocks until the answer. path starts with "/v1". ctype/accept may be NULL.
 * Returns 0 with *out filled (any HTTP status), or TAMCTL_EXIT_UNREACHABLE after printing
 * "tamctl: cannot reach <url>: <reason>".
 */
int tamctl_http_call(struct tamctl_http *h, const char *method, const char *path, const char *ctype,
                     const void *body, size_t len, const char *accept, struct tamctl_reply *out);

/* ---- tables (tamctl_table.c) ---- */

#define TAMCTL_TABLE_COLS 8

struct tamctl_table {
    size_t ncols;
    const char *head[TAMCTL_TABLE_COLS];
    char **cells; /* nrows * ncols owned strings */
    size_t nrows;
    size_t cap;
};

/* head: NULL-terminated column titles (at most TAMCTL_TABLE_COLS), borrowed. */
void tamctl_table_init(struct tamctl_table *t, const char *const *head);
/* Appends one row of ncols cells (copied; NULL prints "-"). */
void tamctl_table_add(struct tamctl_table *t, const char *const *cells);
/* Prints the aligned table (two spaces between columns) and frees it. */
void tamctl_table_print(struct tamctl_table *t, FILE *f);

/* ---- shared helpers and command state (tamctl_admin.c) ---- */

struct tamctl_admin {
    const char *url;
    const char *cacert;
    const char *token_file;
    const char *tenant;
    bool json;
    char token[TAMCTL_TOKEN_MAX + 1];
    struct tamctl_http *http;
};

/* Prints "tamctl: <msg>" and returns TAMCTL_EXIT_USAGE. */
int tamctl_usage_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Sends one request and checks the status. JSON bodies: pass a json_t (stolen) as jbody and
 * NULL body. On a 2xx answer returns 0 and, when jout is non-NULL, the parsed JSON (NULL for
 * an empty body); an error answer prints "tamctl: <status> <title>: <detail>" and returns
 * TAMCTL_EXIT_API; transport failures return TAMCTL_EXIT_UNREACHABLE.
 */
int tamctl_api(struct tamctl_admin *a, const char *method, const char *path, json_t *jbody,
               json_t **jout);
/* The same with a raw body of Content-Type ctype (borrowed). */
int tamctl_api_raw(struct tamctl_admin *a, const char *method, const char *path, const char *ctype,
                   const void *body, size_t len, json_t **jout);

/* The tenant-scoped path "/v1/tenants/<tenant><suffix>" into out; false if too long. */
bool tamctl_tenant_path(const struct tamctl_admin *a, char *out, size_t n, const char *suffix);
/* Whether s is a safe path segment ([A-Za-z0-9_-], 1..1100 characters); prints
 * "tamctl: bad <what> <s>" when not. */
bool tamctl_segment_ok(const char *s, const char *what);
/* Requires --tenant; prints the reason and returns false when absent. */
bool tamctl_need_tenant(const struct tamctl_admin *a);
/* Reads a whole local file (at most max bytes) as a NUL-terminated string; NULL on failure
 * after printing the reason. Free with tam_free. */
char *tamctl_slurp(const char *path, size_t max, size_t *len);

/* Formats values for tables into buf (n bytes) and returns buf. */
const char *tamctl_fmt_ms(json_t *v, char *buf, size_t n);     /* Unix ms -> UTC time */
const char *tamctl_fmt_join(json_t *arr, char *buf, size_t n); /* ["a","b"] -> "a,b" */
const char *tamctl_fmt_scalar(json_t *v, char *buf, size_t n); /* string/int/bool/null */
/* Prints "KEY   value" (value "-" when NULL or empty). */
void tamctl_kv(const char *k, const char *v);
/* Prints a JSON answer pretty on stdout (members in the server's order); keeps j. */
void tamctl_print_answer(json_t *j);
/* The end of a command that shows one object: when rc is 0, j as JSON under --json, else
 * with print; then releases j. Returns rc. */
int tamctl_show(const struct tamctl_admin *a, int rc, json_t *j, void (*print)(json_t *j));
/* Prints a 204 answer's confirmation, or the JSON answer under --json. */
void tamctl_done(const struct tamctl_admin *a, const char *what);

/* Commands: argv[0] is the command noun ("tenant", ...). */
int tamctl_admin_tenant(struct tamctl_admin *a, int argc, char **argv);
int tamctl_admin_anchor(struct tamctl_admin *a, int argc, char **argv);
int tamctl_admin_device(struct tamctl_admin *a, int argc, char **argv);
int tamctl_admin_component(struct tamctl_admin *a, int argc, char **argv);
int tamctl_admin_policy(struct tamctl_admin *a, int argc, char **argv);

void tamctl_admin_usage(FILE *f);

/* Whether argv (argv[0] = "tamctl") is an admin command line: a global admin option or an
 * admin command noun first. */
bool tamctl_admin_applies(int argc, char **argv);
/* Runs an admin command line; returns the exit status. */
int tamctl_admin_main(int argc, char **argv);

#endif
