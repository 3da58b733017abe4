/*
 * The tamd parent process.
 *
 * - Zero configuration (no `redis` address): it runs a private redis-server on a Unix
 *   socket in data-dir (AOF on) through tam_redis_server, before anything else, and
 *   stops it last. It also runs `workers` tam-worker processes (found next to tamd, in
 *   ../worker/ in a build tree, or on PATH) with --redis, --data-dir and --config; a
 *   missing tam-worker binary is a warning.
 * - procs = 1: the parent serves TEEP itself (one gateway on its own loop).
 *   procs = N > 1: it starts N gateway children. Each is this same binary re-executed
 *   (/proc/self/exe, the same arguments plus --redis ADDR, and TAMD_CHILD=1 in its
 *   environment): a fresh process with its own loop, listeners (SO_REUSEPORT on the one
 *   port), Redis connections and RNG state, nothing inherited but the arguments.
 * - Children that die are restarted with backoff (100 ms doubling to 5 s; reset after
 *   10 s of life). Children are started under `setpriv --pdeathsig` (gateways also set
 *   PR_SET_PDEATHSIG themselves), so none outlives a crashed parent.
 * - SIGTERM/SIGINT: gateways drain first (in-flight answers still need the workers),
 *   then workers stop, then Redis; exit 0. SIGHUP is forwarded to every child and
 *   reloads the in-process gateway. procs and workers change only with a restart.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "main.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tam/redis_server.h"
#include "tam/tls.h"

#define MAX_PROCS      64
#define MAX_ARGS       256
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define STABLE_MS      10000u
#define KILL_GRACE_MS  5000u

extern char **environ;

struct super;

enum proc_kind { PROC_GATEWAY = 0, PROC_WORKER, PROC_DEMO };

static const char *const kind_names[] = {"gateway", "worker", "demo"};

struct proc {
    struct super *s;
    uv_process_t h;
    uv_timer_t restart;
    enum proc_kind kind;
    bool running; /* the process handle is open (until its close callback) */
    bool timer_open;
    unsigned index;
    uint32_t failures;
    uint64_t started_at;
    int pid;
};

enum stage {
    STAGE_RUNNING = 0,
    STAGE_GATEWAYS, /* waiting for gateways to drain */
    STAGE_WORKERS,  /* waiting for workers to exit */
    STAGE_REDIS,    /* waiting for the private redis-server */
    STAGE_DONE,
};

struct super {
    uv_loop_t *loop;
    const struct tam_config *cfg; /* borrowed */
    int argc;
    char **argv;
    char exe[PATH_MAX];
    char worker_exe[PATH_MAX];
    char agent_exe[PATH_MAX];
    char demo_args[4][TAM_ADDR_HOST_MAX + 64]; /* --admin, --url, --payload-listen, --ca */
    char setpriv[PATH_MAX];
    char redis_addr[TAM_CONFIG_STR_MAX + 16];
    struct tam_redis_server *redis;
    struct tam_gw *gw;
    struct proc gws[MAX_PROCS];
    unsigned n_gws;
    struct proc workers[MAX_PROCS];
    unsigned n_workers;
    struct proc demo; /* tam-agent demo (--demo): runs once, not restarted */
    char **child_env;
    uv_signal_t sig[3];
    uv_timer_t kill_timer;
    bool services_started;
    enum stage stage;
    int exit_code;
};

static void advance(struct super *s);
static void super_stop(struct super *s);
static void spawn(struct proc *p);

/* ---- helpers ---- */

static bool executable(const char *path)
{
    return access(path, X_OK) == 0;
}

static bool find_in_path(const char *name, char *out, size_t outsz)
{
    const char *path = getenv("PATH");
    path = path != NULL ? path : "/usr/local/bin:/usr/bin:/bin";
    while (*path != '\0') {
        const char *end = strchr(path, ':');
        size_t n = end != NULL ? (size_t)(end - path) : strlen(path);
        int w = snprintf(out, outsz, "%.*s/%s", (int)n, path, name);
        if (w > 0 && (size_t)w < outsz && executable(out)) {
            return true;
        }
        path += n + (end != NULL);
    }
    out[0] = '\0';
    return false;
}

/* A sibling program: next to tamd, in ../<dir>/ of a build tree, or on PATH. */
static void find_program(const struct super *s, const char *name, const char *build_dir,
                         char *out, size_t outsz)
{
    char dir[PATH_MAX];
    (void)snprintf(dir, sizeof(dir), "%s", s->exe);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        int n = snprintf(out, outsz, "%s/%s", dir, name);
        if (n > 0 && (size_t)n < outsz && executable(out)) {
            return;
        }
        n = snprintf(out, outsz, "%s/../%s/%s", dir, build_dir, name);
        if (n > 0 && (size_t)n < outsz && executable(out)) {
            return;
        }
    }
    (void)find_in_path(name, out, outsz);
}

static int make_dir(const char *dir)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof(tmp)) {
        return TAM_EINVAL;
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return TAM_ERRNO(errno);
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        return TAM_ERRNO(errno);
    }
    return TAM_OK;
}

static int build_env(struct super *s)
{
    size_t n = 0;
    while (environ[n] != NULL) {
        n++;
    }
    s->child_env = tam_calloc(n + 3, sizeof(char *));
    if (s->child_env == NULL) {
        return TAM_ENOMEM;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "TAMD_", 5) != 0) {
            s->child_env[o++] = environ[i];
        }
    }
    static char parent[40];
    (void)snprintf(parent, sizeof(parent), "TAMD_PARENT=%ld", (long)getpid());
    s->child_env[o++] = (char *)"TAMD_CHILD=1";
    s->child_env[o++] = parent;
    return TAM_OK;
}

/* ---- children ---- */

static uint32_t backoff_ms(uint32_t failures)
{
    uint32_t d = BACKOFF_MIN_MS;
    for (uint32_t i = 1; i < failures && d < BACKOFF_MAX_MS; i++) {
        d *= 2;
    }
    return d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
}

static void on_restart(uv_timer_t *t)
{
    spawn(t->data);
}

static void on_proc_closed(uv_handle_t *h)
{
    struct proc *p = h->data;
    struct super *s = p->s;
    p->running = false;
    if (s->stage != STAGE_RUNNING) {
        advance(s);
        return;
    }
    if (p->kind == PROC_DEMO) {
        return; /* it ran once; the TAM keeps serving */
    }
    uint64_t lived = uv_now(s->loop) - p->started_at;
    p->failures = lived >= STABLE_MS ? 1 : p->failures + 1;
    uint32_t d = backoff_ms(p->failures);
    tam_log(TAM_LOG_WARN, "event=child_restart kind=%s index=%u delay_ms=%u",
            kind_names[p->kind], p->index, d);
    uv_timer_start(&p->restart, on_restart, d, 0);
}

static void on_proc_exit(uv_process_t *h, int64_t status, int sig)
{
    struct proc *p = h->data;
    int level = (p->s->stage != STAGE_RUNNING && status == 0) ? TAM_LOG_INFO : TAM_LOG_WARN;
    tam_log(level, "event=child_exit kind=%s index=%u pid=%d status=%lld signal=%d",
            kind_names[p->kind], p->index, p->pid, (long long)status, sig);
    p->pid = 0;
    uv_close((uv_handle_t *)h, on_proc_closed);
}

/* argv of a child; strings borrowed from s. Returns the count. */
static int child_args(const struct proc *p, const char **args)
{
    const struct super *s = p->s;
    int n = 0;
    if (s->setpriv[0] != '\0') {
        args[n++] = s->setpriv;
        args[n++] = "--pdeathsig";
        args[n++] = "TERM";
        args[n++] = "--";
    }
    if (p->kind == PROC_DEMO) {
        args[n++] = s->agent_exe;
        args[n++] = "demo";
        args[n++] = "--data-dir";
        args[n++] = s->cfg->data_dir;
        args[n++] = "--admin";
        args[n++] = s->demo_args[0];
        args[n++] = "--url";
        args[n++] = s->demo_args[1];
        args[n++] = "--payload-listen";
        args[n++] = s->demo_args[2];
        args[n++] = "--keep-serving";
        if (s->demo_args[3][0] != '\0') {
            args[n++] = "--ca";
            args[n++] = s->demo_args[3];
        }
    } else if (p->kind == PROC_WORKER) {
        args[n++] = s->worker_exe;
        args[n++] = "--redis";
        args[n++] = s->redis_addr;
        args[n++] = "--data-dir";
        args[n++] = s->cfg->data_dir;
        /* The workers log like tamd, whether the level came from a flag, the file or env. */
        args[n++] = "--log-level";
        args[n++] = tam_log_level_name(s->cfg->log_level);
        args[n++] = "--log-format";
        args[n++] = s->cfg->log_format == TAM_LOG_JSON ? "json" : "logfmt";
        if (s->cfg->config_path != NULL) {
            args[n++] = "--config";
            args[n++] = s->cfg->config_path;
        }
    } else {
        args[n++] = s->exe;
        for (int i = 1; i < s->argc && n < MAX_ARGS - 4; i++) {
            args[n++] = s->argv[i];
        }
        if (s->cfg->redis[0] == '\0') {
            args[n++] = "--redis";
            args[n++] = s->redis_addr;
        }
    }
    args[n] = NULL;
    return n;
}

static void spawn(struct proc *p)
{
    struct super *s = p->s;
    if (s->stage != STAGE_RUNNING) {
        return;
    }
    const char *args[MAX_ARGS + 1];
    (void)child_args(p, args);
    uv_stdio_container_t stdio[3];
    for (int i = 0; i < 3; i++) {
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = i;
    }
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    o.file = args[0];
    o.args = (char **)args;
    o.env = p->kind == PROC_GATEWAY ? s->child_env : NULL;
    o.exit_cb = on_proc_exit;
    o.stdio = stdio;
    o.stdio_count = 3;
    p->h.data = p;
    int err = uv_spawn(s->loop, &p->h, &o);
    p->running = true; /* the handle must be closed even when the spawn failed */
    p->started_at = uv_now(s->loop);
    if (err != 0) {
        tam_log(TAM_LOG_ERROR, "event=spawn_failed kind=%s exe=%s err=%s",
                kind_names[p->kind], args[0], uv_err_name(err));
        uv_close((uv_handle_t *)&p->h, on_proc_closed);
        return;
    }
    p->pid = p->h.pid;
    tam_log(TAM_LOG_INFO, "event=child_started kind=%s index=%u pid=%d",
            kind_names[p->kind], p->index, p->pid);
}

static void init_proc(struct super *s, struct proc *p, enum proc_kind kind, unsigned index)
{
    memset(p, 0, sizeof(*p));
    p->s = s;
    p->kind = kind;
    p->index = index;
    uv_timer_init(s->loop, &p->restart);
    p->restart.data = p;
    p->timer_open = true;
}

static void kill_all(struct proc *v, unsigned n, int sig)
{
    for (unsigned i = 0; i < n; i++) {
        uv_timer_stop(&v[i].restart);
        if (v[i].running && v[i].pid > 0) {
            (void)uv_process_kill(&v[i].h, sig);
        }
    }
}

static bool any_running(const struct proc *v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (v[i].running) {
            return true;
        }
    }
    return false;
}

/* ---- start ---- */

static void on_gw_failed_start(struct super *s)
{
    s->exit_code = 1;
    super_stop(s);
}

/* A host as it appears in a URL: IPv6 literals in brackets. */
static void url_host(const char *host, char *out, size_t outsz)
{
    bool v6 = strchr(host, ':') != NULL;
    (void)snprintf(out, outsz, "%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "");
}

/*
 * --demo: tam-agent demo sets up the demo tenant through this tamd's admin API and runs the
 * fleet against the TEEP listener (it waits for /readyz itself). Its payload server (the
 * URI scenario's download site) listens on the admin port + 1.
 */
static void start_demo(struct super *s)
{
    const struct tam_config *c = s->cfg;
    find_program(s, "tam-agent", "agent", s->agent_exe, sizeof(s->agent_exe));
    if (s->agent_exe[0] == '\0' || c->admin_listen.kind == TAM_ADDR_UNIX ||
        c->listen.kind == TAM_ADDR_UNIX) {
        tam_log(TAM_LOG_WARN, "event=no_demo msg=\"tam-agent not found, or a listener is not "
                              "HOST:PORT\"");
        return;
    }
    bool tls = c->tls_cert[0] != '\0', admin_tls = c->admin_tls_cert[0] != '\0';
    char host[TAM_ADDR_HOST_MAX + 2], lhost[TAM_ADDR_HOST_MAX + 2];
    url_host(c->admin_listen.host, host, sizeof(host));
    url_host(c->listen.host, lhost, sizeof(lhost));
    (void)snprintf(s->demo_args[0], sizeof(s->demo_args[0]), "%s://%s:%u",
                   admin_tls ? "https" : "http", host, c->admin_listen.port);
    (void)snprintf(s->demo_args[1], sizeof(s->demo_args[1]), "%s://%s:%u/tam/demo",
                   tls ? "https" : "http", lhost, c->listen.port);
    (void)snprintf(s->demo_args[2], sizeof(s->demo_args[2]), "%s:%u", c->admin_listen.host,
                   (unsigned)c->admin_listen.port + 1u);
    /* One CA file serves both clients: self-signed certificates (the usual demo) need the
     * same file on both listeners, or a bundle of both given as tls-cert. */
    (void)snprintf(s->demo_args[3], sizeof(s->demo_args[3]), "%s",
                   tls ? c->tls_cert : admin_tls ? c->admin_tls_cert : "");
    spawn(&s->demo);
}

static void start_workers(struct super *s)
{
    find_program(s, "tam-worker", "worker", s->worker_exe, sizeof(s->worker_exe));
    if (s->worker_exe[0] == '\0') {
        tam_log(TAM_LOG_WARN, "event=no_worker msg=\"tam-worker not found next to tamd or "
                              "on PATH; QueryResponses will time out\"");
        return;
    }
    s->n_workers = s->cfg->workers;
    for (unsigned i = 0; i < s->n_workers; i++) {
        spawn(&s->workers[i]);
    }
}

static void start_services(struct super *s)
{
    if (s->services_started) {
        return;
    }
    s->services_started = true;
    if (s->cfg->procs <= 1) {
        struct tam_config gcfg;
        struct tam_buf msg;
        tam_buf_init(&msg, 1024);
        int err = tam_config_reload(s->cfg, &gcfg, &msg); /* the gateway's own copy */
        tam_buf_finish(&msg);
        if (err == TAM_OK) {
            err = tam_gw_create(s->loop, &gcfg, s->redis_addr, &s->gw);
        }
        if (err != TAM_OK) {
            on_gw_failed_start(s);
            return;
        }
    }
    s->n_gws = s->cfg->procs > 1 ? s->cfg->procs : 0;
    for (unsigned i = 0; i < s->n_gws; i++) {
        spawn(&s->gws[i]);
    }
    if (s->redis != NULL && s->cfg->workers > 0) {
        start_workers(s);
    }
    if (s->cfg->demo) {
        start_demo(s);
    }
}

static void on_redis_state(struct tam_redis_server *r, enum tam_redis_server_state st, void *data)
{
    struct super *s = data;
    if (st == TAM_REDIS_SERVER_READY) {
        tam_log(TAM_LOG_INFO, "event=redis_ready addr=%s", s->redis_addr);
        start_services(s);
    } else if (st == TAM_REDIS_SERVER_FAILED) {
        tam_log(TAM_LOG_ERROR, "event=redis_failed msg=\"private redis-server keeps dying\"");
        s->exit_code = 1;
        super_stop(s);
    } else if (st == TAM_REDIS_SERVER_DOWN) {
        tam_log(TAM_LOG_WARN, "event=redis_down msg=\"private redis-server exited; restarting\"");
    }
}

static int start_redis(struct super *s)
{
    int err = make_dir(s->cfg->data_dir);
    if (err == TAM_OK) {
        err = tam_gw_secrets_create(s->cfg); /* before any gateway or worker reads them */
    }
    if (err == TAM_OK) {
        err =
            tam_redis_server_create(s->loop, s->cfg->data_dir, NULL, on_redis_state, s, &s->redis);
    }
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=redis_start_failed dir=%s err=%s", s->cfg->data_dir,
                err > TAM_ERR_FIRST_ && err < TAM_ERR_LAST_ ? tam_errname(err) : uv_err_name(err));
        return err;
    }
    (void)snprintf(s->redis_addr, sizeof(s->redis_addr), "%s", tam_redis_server_address(s->redis));
    return TAM_OK;
}

/* ---- stop ---- */

static void on_gw_done(struct tam_gw *gw, void *arg)
{
    struct super *s = arg;
    tam_gw_destroy(gw);
    s->gw = NULL;
    advance(s);
}

static void on_kill_timer(uv_timer_t *t)
{
    struct super *s = t->data;
    tam_log(TAM_LOG_WARN, "event=stop_deadline stage=%d msg=\"killing what is left\"", s->stage);
    kill_all(s->stage == STAGE_GATEWAYS ? s->gws : s->workers,
             s->stage == STAGE_GATEWAYS ? s->n_gws : s->n_workers, SIGKILL);
    kill_all(&s->demo, 1, SIGKILL);
}

static void on_handle_closed(uv_handle_t *h)
{
}

static void on_redis_stopped(void *data)
{
    struct super *s = data;
    s->redis = NULL;
    advance(s);
}

static void close_all(struct super *s)
{
    for (int i = 0; i < 3; i++) {
        uv_close((uv_handle_t *)&s->sig[i], on_handle_closed);
    }
    uv_close((uv_handle_t *)&s->kill_timer, on_handle_closed);
    for (unsigned i = 0; i < MAX_PROCS; i++) {
        uv_close((uv_handle_t *)&s->gws[i].restart, on_handle_closed);
        uv_close((uv_handle_t *)&s->workers[i].restart, on_handle_closed);
    }
    uv_close((uv_handle_t *)&s->demo.restart, on_handle_closed);
}

/* Moves the stop sequence on as far as it can go now. */
static void advance(struct super *s)
{
    if (s->stage == STAGE_GATEWAYS && s->gw == NULL && !any_running(s->gws, s->n_gws)) {
        s->stage = STAGE_WORKERS;
        kill_all(s->workers, s->n_workers, SIGTERM);
        kill_all(&s->demo, 1, SIGTERM);
        uv_timer_start(&s->kill_timer, on_kill_timer, s->cfg->shutdown_timeout_ms + KILL_GRACE_MS,
                       0);
    }
    if (s->stage == STAGE_WORKERS && !any_running(s->workers, s->n_workers) &&
        !any_running(&s->demo, 1)) {
        s->stage = STAGE_REDIS;
        uv_timer_stop(&s->kill_timer);
        if (s->redis != NULL) {
            tam_redis_server_stop(s->redis, on_redis_stopped, s);
            return; /* on_redis_stopped comes back here */
        }
    }
    if (s->stage == STAGE_REDIS && s->redis == NULL) {
        s->stage = STAGE_DONE;
        close_all(s);
    }
}

static void super_stop(struct super *s)
{
    if (s->stage != STAGE_RUNNING) {
        return;
    }
    tam_log(TAM_LOG_INFO, "event=stopping gateways=%u workers=%u", s->n_gws + (s->gw != NULL),
            s->n_workers);
    s->stage = STAGE_GATEWAYS;
    kill_all(s->gws, s->n_gws, SIGTERM);
    uv_timer_start(&s->kill_timer, on_kill_timer, s->cfg->shutdown_timeout_ms + KILL_GRACE_MS, 0);
    if (s->gw != NULL) {
        tam_gw_shutdown(s->gw, on_gw_done, s);
    }
    advance(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct super *s = h->data;
    if (signum != SIGHUP) {
        super_stop(s);
        return;
    }
    tam_log(TAM_LOG_INFO, "event=sighup children=%u", s->n_gws + s->n_workers);
    kill_all(s->gws, s->n_gws, SIGHUP);
    kill_all(s->workers, s->n_workers, SIGHUP);
    if (s->gw != NULL) {
        (void)tam_gw_reload(s->gw);
    }
}

static int init_super(struct super *s, uv_loop_t *loop, const struct tam_config *cfg, int argc,
                      char **argv)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->cfg = cfg;
    s->argc = argc;
    s->argv = argv;
    ssize_t n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
    if (n <= 0) {
        (void)snprintf(s->exe, sizeof(s->exe), "%s", argv[0]);
    } else {
        s->exe[n] = '\0';
    }
    (void)find_in_path("setpriv", s->setpriv, sizeof(s->setpriv));
    static const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(loop, &s->sig[i]);
        s->sig[i].data = s;
        uv_signal_start(&s->sig[i], on_signal, sigs[i]);
    }
    uv_timer_init(loop, &s->kill_timer);
    s->kill_timer.data = s;
    for (unsigned i = 0; i < MAX_PROCS; i++) {
        init_proc(s, &s->gws[i], PROC_GATEWAY, i);
        init_proc(s, &s->workers[i], PROC_WORKER, i);
    }
    init_proc(s, &s->demo, PROC_DEMO, 0);
    return build_env(s);
}

int tam_gw_run_parent(const struct tam_config *cfg, int argc, char **argv)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        return 1;
    }
    /* A bad tenant key or certificate stops us before Redis or any child starts. */
    if (tam_gw_check_config(cfg) != TAM_OK) {
        (void)uv_loop_close(&loop);
        return 1;
    }
    struct super *s = tam_calloc(1, sizeof(*s));
    int err = s != NULL ? init_super(s, &loop, cfg, argc, argv) : TAM_ENOMEM;
    if (err == TAM_OK && cfg->redis[0] == '\0') {
        err = start_redis(s); /* services start when it answers PING */
    } else if (err == TAM_OK) {
        (void)snprintf(s->redis_addr, sizeof(s->redis_addr), "%s", cfg->redis);
        start_services(s);
    }
    if (err != TAM_OK && s != NULL) {
        s->exit_code = 1;
        super_stop(s);
    }
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    int code = s != NULL ? s->exit_code : 1;
    if (s != NULL) {
        tam_free(s->child_env);
        tam_free(s);
    }
    tam_tls_thread_cleanup();
    if (uv_loop_close(&loop) != 0) {
        tam_log(TAM_LOG_WARN, "event=loop_not_empty");
    }
    tam_log(TAM_LOG_INFO, "event=exit code=%d", code);
    return code;
}
