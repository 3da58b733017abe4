#include "redis_fixture.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 48
#define MAX_LIVE 16

/*
 * Servers and directories of this process, by value: a failed cr_assert leaves the test
 * function (and its struct tu_redis) behind, but the worker still exits through exit(), so an
 * atexit hook can kill what is left and remove the directories.
 */
static struct {
    pid_t pid;
    char dir[128];
} live[MAX_LIVE];
static bool cleanup_registered;

static void remove_tree(const char *dir, int depth);

static void cleanup_at_exit(void)
{
    for (size_t i = 0; i < MAX_LIVE; i++) {
        if (live[i].pid > 0) {
            (void)kill(live[i].pid, SIGKILL);
            (void)waitpid(live[i].pid, NULL, 0);
        }
        if (live[i].dir[0] != '\0') {
            remove_tree(live[i].dir, 0);
        }
        live[i].pid = 0;
        live[i].dir[0] = '\0';
    }
}

/* The registry slot of dir (allocated if create); MAX_LIVE when full or absent. */
static size_t live_slot(const char *dir, bool create)
{
    size_t free_slot = MAX_LIVE;
    for (size_t i = 0; i < MAX_LIVE; i++) {
        if (live[i].dir[0] != '\0' && strcmp(live[i].dir, dir) == 0) {
            return i;
        }
        if (live[i].dir[0] == '\0' && free_slot == MAX_LIVE) {
            free_slot = i;
        }
    }
    if (create && free_slot < MAX_LIVE) {
        (void)snprintf(live[free_slot].dir, sizeof(live[free_slot].dir), "%s", dir);
        if (!cleanup_registered) {
            cleanup_registered = atexit(cleanup_at_exit) == 0;
        }
        return free_slot;
    }
    return MAX_LIVE;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void find_exe(char *out, size_t outsz)
{
    const char *path = getenv("PATH");
    if (path == NULL) {
        path = "/usr/bin:/bin";
    }
    while (*path != '\0') {
        const char *colon = strchr(path, ':');
        size_t n = colon != NULL ? (size_t)(colon - path) : strlen(path);
        (void)snprintf(out, outsz, "%.*s/redis-server", (int)n, path);
        if (n > 0 && access(out, X_OK) == 0) {
            return;
        }
        path += n + (colon != NULL);
    }
    (void)snprintf(out, outsz, "/usr/bin/redis-server");
}

static void build_args(const struct tu_redis *r, const char *exe, const char *pidfile,
                       const char *logfile, const char **argv)
{
    size_t n = 0;
    /* clang-format off */
    const char *fixed[] = {
        exe,
        "--port", "0",
        "--unixsocket", r->sock,
        "--unixsocketperm", "700",
        "--dir", r->dir,
        "--save", "",
        "--daemonize", "no",
        "--appendonly", r->aof ? "yes" : "no",
        "--appendfsync", "everysec",
        "--enable-debug-command", "local",
        "--pidfile", pidfile,
        "--logfile", logfile,
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        argv[n++] = fixed[i];
    }
    for (size_t i = 0; r->extra_args != NULL && r->extra_args[i] != NULL; i++) {
        cr_assert_lt(n, MAX_ARGS - 1, "too many extra args");
        argv[n++] = r->extra_args[i];
    }
    argv[n] = NULL;
}

/* In the child: die with the test process, keep stderr, then exec. Never returns. */
static void exec_child(const char *exe, const char **argv)
{
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        (void)dup2(null, STDIN_FILENO);
        (void)dup2(null, STDOUT_FILENO);
    }
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 && max < 4096 ? max : 4096); fd++) {
        (void)close((int)fd); /* Criterion's pipes must not outlive the test */
    }
    execv(exe, (char *const *)(uintptr_t)argv);
    _exit(127);
}

static bool answers_ping(const struct tu_redis *r)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
    bool ok = false;
    if (c != NULL && c->err == 0) {
        redisReply *reply = redisCommand(c, "PING");
        /* With --requirepass the server answers -NOAUTH: it is up all the same. */
        ok = reply != NULL &&
             ((reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0) ||
              (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOAUTH", 6) == 0));
        if (reply != NULL) {
            freeReplyObject(reply);
        }
    }
    if (c != NULL) {
        redisFree(c);
    }
    return ok;
}

static void wait_ready(struct tu_redis *r)
{
    for (int i = 0; i < 500; i++) {
        int st;
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->pid = 0;
            size_t slot = live_slot(r->dir, false);
            if (slot < MAX_LIVE) {
                live[slot].pid = 0;
            }
            cr_assert_fail("redis-server exited at start (status %d); see %s/redis.log", st,
                           r->dir);
        }
        if (answers_ping(r)) {
            return;
        }
        sleep_ms(10);
    }
    cr_assert_fail("redis-server did not answer PING within 5 s (%s)", r->dir);
}

void tu_redis_start(struct tu_redis *r)
{
    cr_assert_eq(r->pid, 0, "tu_redis_start: already running");
    if (r->dir[0] == '\0') {
        (void)snprintf(r->dir, sizeof(r->dir), "/tmp/tu-redis-XXXXXX");
        cr_assert_not_null(mkdtemp(r->dir), "mkdtemp: %s", strerror(errno));
    }
    (void)snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
    (void)snprintf(r->addr, sizeof(r->addr), "unix:%s", r->sock);
    char exe[512], pidfile[200], logfile[200];
    find_exe(exe, sizeof(exe));
    (void)snprintf(pidfile, sizeof(pidfile), "%s/redis.pid", r->dir);
    (void)snprintf(logfile, sizeof(logfile), "%s/redis.log", r->dir);
    const char *argv[MAX_ARGS];
    build_args(r, exe, pidfile, logfile, argv);
    (void)unlink(r->sock);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        exec_child(exe, argv);
    }
    r->pid = pid;
    size_t slot = live_slot(r->dir, true);
    if (slot < MAX_LIVE) {
        live[slot].pid = pid;
    }
    wait_ready(r);
}

void tu_redis_kill(struct tu_redis *r, int sig)
{
    if (r->pid <= 0) {
        return;
    }
    (void)kill(r->pid, sig);
    for (int i = 0; i < 1000; i++) {
        int st;
        pid_t w = waitpid(r->pid, &st, WNOHANG);
        if (w == r->pid || (w < 0 && errno == ECHILD)) {
            size_t slot = live_slot(r->dir, false);
            if (slot < MAX_LIVE) {
                live[slot].pid = 0;
            }
            r->pid = 0;
            return;
        }
        if (i == 500) {
            (void)kill(r->pid, SIGKILL); /* 5 s without exiting */
        }
        sleep_ms(10);
    }
    cr_assert_fail("redis-server %d did not exit", (int)r->pid);
}

void tu_redis_restart(struct tu_redis *r)
{
    tu_redis_kill(r, SIGTERM);
    tu_redis_start(r);
}

/* Removes dir and what redis puts in it (files and the appendonlydir/ directory). */
static void remove_tree(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char p[512];
        (void)snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth < 4) {
            remove_tree(p, depth + 1);
        } else {
            (void)unlink(p);
        }
    }
    closedir(d);
    (void)rmdir(dir);
}

void tu_redis_stop(struct tu_redis *r)
{
    tu_redis_kill(r, SIGKILL);
    if (r->dir[0] != '\0') {
        size_t slot = live_slot(r->dir, false);
        if (slot < MAX_LIVE) {
            live[slot].dir[0] = '\0';
        }
        remove_tree(r->dir, 0);
        r->dir[0] = '\0';
    }
}

redisContext *tu_redis_connect(const struct tu_redis *r)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
    cr_assert(c != NULL && c->err == 0, "connect %s: %s", r->sock, c != NULL ? c->errstr : "oom");
    cr_assert_eq(redisSetTimeout(c, tv), REDIS_OK);
    return c;
}

redisReply *tu_redis_cmd(const struct tu_redis *r, const char *fmt, ...)
{
    redisContext *c = tu_redis_connect(r);
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_not_null(reply, "command failed: %s", c->errstr);
    redisFree(c);
    return reply;
}
