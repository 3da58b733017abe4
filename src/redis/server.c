/* Private redis-server supervisor (contract in include/tam/redis_server.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tam/redis.h"
#include "tam/redis_server.h"

#define MAX_RESTART_RING  64
#define MAX_EXTRA_ARGS    64
#define RESTART_WINDOW_MS 60000u
#define NUM_FIXED_ARGS    21
#define NUM_WRAP_ARGS     4

struct tam_redis_server {
    uv_loop_t *loop;
    struct tam_redis_server_opts opts; /* exe and extra_args replaced by owned copies */
    char *exe;                         /* resolved path */
    char *setpriv;                     /* resolved util-linux setpriv, or NULL */
    char **extra;                      /* NULL-terminated copies */
    char *dir;
    char *sock;
    char *addr;
    char *pidfile;
    char *logfile;
    tam_redis_server_state_fn on_state;
    void *data;
    tam_redis_server_stopped_fn on_stopped;
    void *stopped_data;
    uv_process_t proc;
    bool proc_open;   /* proc initialised and not yet closed */
    int pid;          /* running child, or 0 */
    uv_timer_t timer; /* start deadline, restart backoff, or SIGKILL deadline */
    struct tam_redis *probe;
    enum tam_redis_server_state state;
    bool stopping;
    uint64_t restart_at[MAX_RESTART_RING]; /* loop times of recent restarts, a ring */
    uint32_t restart_next;
    uint32_t restarts;
    uint32_t attempt;
    uint64_t rng;
};

static void spawn_child(struct tam_redis_server *s);

static void set_state(struct tam_redis_server *s, enum tam_redis_server_state st)
{
    s->state = st;
    if (!s->stopping && s->on_state != NULL) {
        s->on_state(s, st, s->data);
    }
}

static void free_server(struct tam_redis_server *s)
{
    for (size_t i = 0; s->extra != NULL && s->extra[i] != NULL; i++) {
        tam_free(s->extra[i]);
    }
    tam_free(s->extra);
    tam_free(s->exe);
    tam_free(s->setpriv);
    tam_free(s->dir);
    tam_free(s->sock);
    tam_free(s->addr);
    tam_free(s->pidfile);
    tam_free(s->logfile);
    tam_free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct tam_redis_server *s = h->data;
    tam_redis_server_stopped_fn cb = s->on_stopped;
    void *data = s->stopped_data;
    free_server(s);
    if (cb != NULL) {
        cb(data);
    }
}

static void finish_stop(struct tam_redis_server *s)
{
    tam_log(TAM_LOG_INFO, "event=redis_server_stopped dir=%s", s->dir);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static uint32_t next_random(struct tam_redis_server *s)
{
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s->rng = x;
    return (uint32_t)(x >> 32);
}

static uint32_t recent_restarts(const struct tam_redis_server *s, uint64_t now)
{
    uint32_t n = 0;
    for (size_t i = 0; i < MAX_RESTART_RING; i++) {
        uint64_t t = s->restart_at[i];
        if (t != 0 && now - t < RESTART_WINDOW_MS) {
            n++;
        }
    }
    return n;
}

static void on_timer(uv_timer_t *t);

/* The child is gone (exited, or never spawned): restart it later, or give up. */
static void child_down(struct tam_redis_server *s)
{
    uint64_t now = uv_now(s->loop);
    if (recent_restarts(s, now) >= s->opts.max_restarts_per_min) {
        tam_log(TAM_LOG_ERROR, "event=redis_server_failed dir=%s restarts_per_min=%u", s->dir,
                s->opts.max_restarts_per_min);
        set_state(s, TAM_REDIS_SERVER_FAILED);
        return;
    }
    uint32_t delay = tam_redis_backoff_ms(
        s->opts.restart_backoff_min_ms, s->opts.restart_backoff_max_ms, s->attempt, next_random(s));
    if (s->attempt < 31) {
        s->attempt++;
    }
    tam_log(TAM_LOG_WARN, "event=redis_server_restart_scheduled dir=%s delay_ms=%u", s->dir, delay);
    uv_timer_start(&s->timer, on_timer, delay, 0);
    set_state(s, TAM_REDIS_SERVER_DOWN);
}

static void on_proc_closed(uv_handle_t *h)
{
    struct tam_redis_server *s = h->data;
    s->proc_open = false;
    if (s->stopping) {
        finish_stop(s);
    } else {
        child_down(s);
    }
}

static void on_child_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct tam_redis_server *s = p->data;
    tam_log(s->stopping ? TAM_LOG_INFO : TAM_LOG_WARN,
            "event=redis_server_exit dir=%s pid=%d status=%lld signal=%d", s->dir, s->pid,
            (long long)exit_status, term_signal);
    s->pid = 0;
    tam_redis_destroy(s->probe);
    s->probe = NULL;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->proc, on_proc_closed);
}

static void on_probe_state(struct tam_redis *r, enum tam_redis_state st, int err, void *data)
{
    struct tam_redis_server *s = data;
    if (st != TAM_REDIS_CONNECTED || s->probe != r) {
        return;
    }
    tam_redis_destroy(r); /* allowed from its own state callback */
    s->probe = NULL;
    uv_timer_stop(&s->timer);
    s->attempt = 0;
    tam_log(TAM_LOG_INFO, "event=redis_server_ready dir=%s pid=%d", s->dir, s->pid);
    set_state(s, TAM_REDIS_SERVER_READY);
}

static void on_timer(uv_timer_t *t)
{
    struct tam_redis_server *s = t->data;
    if (s->pid != 0) {
        /* A start deadline or a stop deadline: either way the child must go. */
        tam_log(TAM_LOG_ERROR, "event=redis_server_kill dir=%s pid=%d reason=%s", s->dir, s->pid,
                s->stopping ? "stop_timeout" : "start_timeout");
        (void)uv_process_kill(&s->proc, SIGKILL);
        return;
    }
    if (!s->stopping && !s->proc_open) {
        s->restarts++;
        s->restart_at[s->restart_next] = uv_now(s->loop);
        s->restart_next = (s->restart_next + 1) % MAX_RESTART_RING;
        spawn_child(s);
    }
}

/*
 * argv for redis-server; the strings are borrowed from s. Caller frees the array. When
 * setpriv(1) exists the child runs as "setpriv --pdeathsig KILL -- redis-server ...": the
 * kernel then kills it if we die, so a crashed gateway leaves no orphan holding the data dir.
 */
static const char **build_args(const struct tam_redis_server *s)
{
    size_t n_extra = 0;
    while (s->extra[n_extra] != NULL) {
        n_extra++;
    }
    const char **a = tam_calloc(NUM_WRAP_ARGS + NUM_FIXED_ARGS + n_extra + 1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    size_t k = 0;
    if (s->setpriv != NULL) {
        const char *wrap[NUM_WRAP_ARGS] = {s->setpriv, "--pdeathsig", "KILL", "--"};
        memcpy(a, wrap, sizeof(wrap));
        k = NUM_WRAP_ARGS;
    }
    /* clang-format off */
    const char *fixed[NUM_FIXED_ARGS] = {
        s->exe,
        "--port", "0",
        "--unixsocket", s->sock,
        "--unixsocketperm", "700",
        "--dir", s->dir,
        "--appendonly", s->opts.appendonly_off ? "no" : "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--pidfile", s->pidfile,
        "--logfile", s->logfile,
    };
    /* clang-format on */
    memcpy(a + k, fixed, sizeof(fixed));
    k += NUM_FIXED_ARGS;
    for (size_t i = 0; i < n_extra; i++) {
        a[k++] = s->extra[i]; /* later options override ours in redis */
    }
    return a;
}

/* Watches for the first PING answer; the start deadline covers a probe that never succeeds. */
static void start_probe(struct tam_redis_server *s)
{
    struct tam_redis_opts po = {
        .command_timeout_ms = 1000,
        .connect_timeout_ms = 1000,
        .backoff_min_ms = 10,
        .backoff_max_ms = 200,
        .name = "redis-probe",
    };
    if (tam_redis_create(s->loop, s->addr, &po, on_probe_state, s, &s->probe) != TAM_OK) {
        s->probe = NULL; /* only on OOM; the start deadline then restarts the child */
    }
}

static void spawn_child(struct tam_redis_server *s)
{
    const char **args = build_args(s);
    int err = UV_ENOMEM;
    if (args != NULL) {
        (void)unlink(s->sock); /* stale: nobody answered on it (checked at create) */
        uv_stdio_container_t stdio[3] = {
            {.flags = UV_IGNORE},
            {.flags = UV_IGNORE},
            {.flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO},
        };
        uv_process_options_t o = {0};
        o.exit_cb = on_child_exit;
        o.file = args[0];
        o.args = (char **)(uintptr_t)args;
        o.stdio = stdio;
        o.stdio_count = 3;
        err = uv_spawn(s->loop, &s->proc, &o);
        s->proc.data = s;
        s->proc_open = true;
        tam_free(args);
    }
    if (err != 0) {
        tam_log(TAM_LOG_ERROR, "event=redis_server_spawn_failed dir=%s exe=%s error=%s", s->dir,
                s->exe, tam_strerror(err));
        if (s->proc_open) {
            uv_close((uv_handle_t *)&s->proc, on_proc_closed);
        } else {
            child_down(s);
        }
        return;
    }
    s->pid = s->proc.pid;
    tam_log(TAM_LOG_INFO, "event=redis_server_started dir=%s pid=%d", s->dir, s->pid);
    start_probe(s);
    uv_timer_start(&s->timer, on_timer, s->opts.start_timeout_ms, 0);
    set_state(s, TAM_REDIS_SERVER_STARTING);
}

/* Finds name in PATH (or checks it when it contains a slash). Caller frees. */
static char *resolve_exe(const char *name)
{
    if (strchr(name, '/') != NULL) {
        return access(name, X_OK) == 0 ? tam_strdup(name) : NULL;
    }
    const char *path = getenv("PATH");
    if (path == NULL || path[0] == '\0') {
        path = "/usr/local/bin:/usr/bin:/bin";
    }
    char buf[4096];
    while (*path != '\0') {
        const char *colon = strchr(path, ':');
        size_t n = colon != NULL ? (size_t)(colon - path) : strlen(path);
        int w = snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
        if (n > 0 && w > 0 && (size_t)w < sizeof(buf) && access(buf, X_OK) == 0) {
            return tam_strdup(buf);
        }
        path += n + (colon != NULL);
    }
    return NULL;
}

static int check_server_opts(const struct tam_redis_server_opts *in,
                             struct tam_redis_server_opts *o)
{
    *o = in != NULL ? *in : (struct tam_redis_server_opts){0};
    o->start_timeout_ms = o->start_timeout_ms ? o->start_timeout_ms : 10000;
    o->stop_timeout_ms = o->stop_timeout_ms ? o->stop_timeout_ms : 5000;
    o->restart_backoff_min_ms = o->restart_backoff_min_ms ? o->restart_backoff_min_ms : 200;
    o->restart_backoff_max_ms = o->restart_backoff_max_ms ? o->restart_backoff_max_ms : 5000;
    o->max_restarts_per_min = o->max_restarts_per_min ? o->max_restarts_per_min : 5;
    if (o->max_restarts_per_min > MAX_RESTART_RING ||
        o->restart_backoff_min_ms > o->restart_backoff_max_ms ||
        o->restart_backoff_max_ms > 3600000 || o->start_timeout_ms > 3600000 ||
        o->stop_timeout_ms > 3600000) {
        return TAM_EINVAL;
    }
    return TAM_OK;
}

static char *join(const char *prefix, const char *dir, const char *name)
{
    size_t n = strlen(prefix) + strlen(dir) + strlen(name) + 2;
    char *p = tam_malloc(n);
    if (p != NULL) {
        (void)snprintf(p, n, "%s%s/%s", prefix, dir, name);
    }
    return p;
}

static int copy_config(struct tam_redis_server *s, const char *dir,
                       const struct tam_redis_server_opts *o)
{
    size_t n_extra = 0;
    while (o->extra_args != NULL && o->extra_args[n_extra] != NULL) {
        if (++n_extra > MAX_EXTRA_ARGS) {
            return TAM_EINVAL;
        }
    }
    s->extra = tam_calloc(n_extra + 1, sizeof(*s->extra));
    if (s->extra == NULL) {
        return TAM_ENOMEM;
    }
    for (size_t i = 0; i < n_extra; i++) {
        s->extra[i] = tam_strdup(o->extra_args[i]);
        if (s->extra[i] == NULL) {
            return TAM_ENOMEM;
        }
    }
    s->dir = tam_strdup(dir);
    s->sock = join("", dir, "redis.sock");
    s->addr = join("unix:", dir, "redis.sock");
    s->pidfile = join("", dir, "redis.pid");
    s->logfile = join("", dir, "redis.log");
    if (s->dir == NULL || s->sock == NULL || s->addr == NULL || s->pidfile == NULL ||
        s->logfile == NULL) {
        return TAM_ENOMEM;
    }
    return TAM_OK;
}

/* A Redis already answering on the socket is a live server we must not clobber. */
static bool socket_answers(const char *dir)
{
    char addr[TAM_REDIS_PATH_MAX + 16];
    (void)snprintf(addr, sizeof(addr), "unix:%s/redis.sock", dir);
    redisContext *c = NULL;
    if (tam_redis_sync_connect(addr, 500, &c) != TAM_OK) {
        return false;
    }
    redisFree(c);
    return true;
}

static int check_dir(const char *dir)
{
    struct stat st;
    if (dir == NULL || dir[0] == '\0') {
        return TAM_EINVAL;
    }
    if (strlen(dir) + sizeof("/redis.sock") > TAM_REDIS_PATH_MAX) {
        return TAM_ETOOBIG;
    }
    if (stat(dir, &st) != 0) {
        return TAM_ERRNO(errno);
    }
    return S_ISDIR(st.st_mode) ? TAM_OK : TAM_EINVAL;
}

int tam_redis_server_create(uv_loop_t *loop, const char *dir,
                            const struct tam_redis_server_opts *opts,
                            tam_redis_server_state_fn on_state, void *data,
                            struct tam_redis_server **out)
{
    struct tam_redis_server_opts o;
    if (loop == NULL || out == NULL) {
        return TAM_EINVAL;
    }
    *out = NULL;
    int err = check_dir(dir);
    if (err == TAM_OK) {
        err = check_server_opts(opts, &o);
    }
    if (err != TAM_OK) {
        return err;
    }
    if (socket_answers(dir)) {
        tam_log(TAM_LOG_ERROR, "event=redis_server_already_running dir=%s", dir);
        return TAM_EEXISTS;
    }
    struct tam_redis_server *s = tam_calloc(1, sizeof(*s));
    if (s == NULL) {
        return TAM_ENOMEM;
    }
    s->exe = resolve_exe(o.exe != NULL ? o.exe : "redis-server");
    if (s->exe == NULL) {
        free_server(s);
        return UV_ENOENT;
    }
    s->setpriv = resolve_exe("setpriv"); /* optional: util-linux, always on Debian */
    err = copy_config(s, dir, &o);
    if (err != TAM_OK) {
        free_server(s);
        return err;
    }
    s->loop = loop;
    s->opts = o;
    s->opts.exe = s->exe;
    s->opts.extra_args = (const char *const *)s->extra;
    s->on_state = on_state;
    s->data = data;
    s->rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)s) | 1;
    (void)uv_timer_init(loop, &s->timer); /* cannot fail for a valid loop */
    s->timer.data = s;
    *out = s;
    spawn_child(s); /* a failure here becomes DOWN and a scheduled restart */
    return TAM_OK;
}

void tam_redis_server_stop(struct tam_redis_server *s, tam_redis_server_stopped_fn on_stopped,
                           void *data)
{
    if (s == NULL || s->stopping) {
        return;
    }
    s->stopping = true;
    s->on_stopped = on_stopped;
    s->stopped_data = data;
    tam_redis_destroy(s->probe);
    s->probe = NULL;
    uv_timer_stop(&s->timer);
    if (s->pid != 0) {
        tam_log(TAM_LOG_INFO, "event=redis_server_stopping dir=%s pid=%d", s->dir, s->pid);
        (void)uv_process_kill(&s->proc, SIGTERM);
        uv_timer_start(&s->timer, on_timer, s->opts.stop_timeout_ms, 0);
    } else if (!s->proc_open) {
        finish_stop(s);
    } /* else: the exit was seen and the handle is closing; on_proc_closed finishes. */
}

enum tam_redis_server_state tam_redis_server_state(const struct tam_redis_server *s)
{
    return s->state;
}

const char *tam_redis_server_address(const struct tam_redis_server *s)
{
    return s->addr;
}

const char *tam_redis_server_socket(const struct tam_redis_server *s)
{
    return s->sock;
}

int tam_redis_server_pid(const struct tam_redis_server *s)
{
    return s->pid;
}

uint32_t tam_redis_server_restarts(const struct tam_redis_server *s)
{
    return s->restarts;
}
