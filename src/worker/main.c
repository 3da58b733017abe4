/*
 * tam-worker: takes attestation and install jobs from Redis Streams, does the slow and
 * key-holding work (EAT verification, update planning, SUIT manifest signing, Update signing)
 * and hands the result back to the gateway that holds the HTTP request. Any number of
 * workers may run on any host; each is this one simple blocking loop (queue.c).
 *
 * Signals: SIGTERM / SIGINT finish the jobs already taken (one batch) and exit 0; SIGUSR1
 * logs the counters. The address space is capped with RLIMIT_AS (mem-limit) so a hostile
 * input cannot eat the machine (not under AddressSanitizer, whose shadow memory needs far
 * more address space). tam_random() re-seeds itself per process and ECDSA signing is
 * deterministic (RFC 6979), so forked or cloned workers never share nonces (DEPS.md 8.1).
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tam/buf.h"
#include "tam/config.h"
#include "tam/crypto.h"
#include "tam/err.h"
#include "tam/log.h"
#include "worker.h"

#if defined(__SANITIZE_ADDRESS__)
#define WK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WK_ASAN 1
#endif
#endif

extern char **environ;

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t dump_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_dump(int sig)
{
    (void)sig;
    dump_flag = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_dump;
    (void)sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    (void)sigaction(SIGPIPE, &sa, NULL);
}

static void limit_memory(uint64_t bytes)
{
#ifdef WK_ASAN
    (void)bytes;
    tam_log(TAM_LOG_INFO, "event=mem_limit_skipped reason=\"AddressSanitizer build\"");
#else
    if (bytes == 0) {
        return;
    }
    struct rlimit rl = {.rlim_cur = (rlim_t)bytes, .rlim_max = (rlim_t)bytes};
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        tam_log(TAM_LOG_WARN, "event=mem_limit_failed errno=%d", errno);
    }
#endif
}

static void worker_identity(struct worker *w, const struct tam_config *cfg)
{
    if (cfg->worker_id[0] != '\0') {
        (void)snprintf(w->id, sizeof(w->id), "%s", cfg->worker_id);
    } else {
        char host[64] = "worker";
        (void)gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        (void)snprintf(w->id, sizeof(w->id), "%.64s-%ld", host, (long)getpid());
    }
    if (cfg->redis[0] != '\0') {
        (void)snprintf(w->redis_addr, sizeof(w->redis_addr), "%s", cfg->redis);
    } else {
        (void)snprintf(w->redis_addr, sizeof(w->redis_addr), "unix:%s/redis.sock", cfg->data_dir);
    }
}

static int load_config(struct tam_config *cfg, int argc, char **argv)
{
    struct tam_buf msg;
    tam_buf_init(&msg, 4096);
    int err = tam_config_load(cfg, TAM_PROG_WORKER, argc, argv, environ, &msg);
    if (err != TAM_OK) {
        (void)fprintf(stderr, "tam-worker: %.*s\n", (int)msg.len,
                      msg.data != NULL ? (const char *)msg.data : tam_strerror(err));
    }
    tam_buf_finish(&msg);
    return err;
}

static int run(const struct tam_config *cfg)
{
    struct worker w;
    memset(&w, 0, sizeof(w));
    w.cfg = cfg;
    w.stop = &stop_flag;
    w.dump = &dump_flag;
    worker_identity(&w, cfg);
    int err = wk_tenants_load(&w);
    if (err == TAM_OK) {
        err = wk_rtenants_init(&w);
    }
    if (err == TAM_OK) {
        limit_memory(cfg->mem_limit);
        tam_log(TAM_LOG_INFO,
                "event=worker_start worker=%s tenants=%u redis_tenants=%s batch=%u attempts=%u "
                "claim_idle_ms=%llu",
                w.id, w.n_tenants, w.rc.enabled ? "yes" : "no", cfg->worker_batch,
                cfg->job_attempts, (unsigned long long)cfg->claim_idle_ms);
        err = wk_queue_run(&w);
        wk_counters_log(&w);
        tam_log(TAM_LOG_INFO, "event=worker_stop worker=%s", w.id);
    }
    wk_rtenants_free(&w);
    wk_tenants_free(&w);
    return err;
}

/*
 * Every batch allocates and releases a few hundred KiB (arenas, CBOR documents, messages).
 * With glibc's defaults that memory goes back to the kernel after each batch (brk shrink or
 * munmap, each a TLB shootdown on every core); keeping it is cheaper. RLIMIT_AS still caps
 * the total.
 */
static void tune_malloc(void)
{
    (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
    (void)mallopt(M_MMAP_THRESHOLD, 8 << 20);
}

int main(int argc, char **argv)
{
    tam_crypto_cache_allocations(); /* before anything uses wolfSSL */
    install_signals();
    tune_malloc();
    struct tam_config cfg;
    if (load_config(&cfg, argc, argv) != TAM_OK) {
        return 2;
    }
    if (cfg.help) {
        tam_config_usage(stdout, TAM_PROG_WORKER, "tam-worker",
                         "Runs TEEP attestation and install jobs from Redis Streams.");
        tam_config_finish(&cfg);
        return 0;
    }
    if (cfg.version) {
        (void)printf("tam-worker 0.1.0\n");
        tam_config_finish(&cfg);
        return 0;
    }
    tam_log_configure(cfg.log_level, (enum tam_log_format)cfg.log_format, "tam-worker");
    int err = run(&cfg);
    tam_config_finish(&cfg);
    return err == TAM_OK ? 0 : 1;
}
