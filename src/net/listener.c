/*
 * Listening sockets and accept. The socket is made by hand so that SO_REUSEPORT is set
 * before bind (libuv 1.44 has no UV_TCP_REUSEPORT), then given to libuv.
 *
 * Connection limit: above max_connections a new connection is accepted and closed at
 * once (counted in drop_max_conns). Accepting never pauses, so there is no low-water
 * mark: capacity is back as soon as a connection closes, and a refused client may retry
 * (with --procs N it likely lands on another process). Not calling uv_accept would
 * instead park clients in the kernel backlog with no answer at all.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"

static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (host == NULL) {
        host = "127.0.0.1";
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) {
        return TAM_OK;
    }
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) {
        return TAM_OK;
    }
    return TAM_EINVAL;
}

static int bound_socket(const struct sockaddr *sa, socklen_t len, bool reuseport)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return TAM_ERRNO(errno);
    }
    int one = 1;
    bool inet = sa->sa_family != AF_UNIX;
    if ((inet && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) ||
        (inet && reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, sa, len) != 0) {
        int err = TAM_ERRNO(errno);
        close(fd);
        return err;
    }
    return fd;
}

static int tcp_socket(const struct tam_http_server_config *cfg)
{
    struct sockaddr_storage ss;
    if (parse_addr(cfg->host, cfg->port, &ss) != TAM_OK) {
        return TAM_EINVAL;
    }
    socklen_t len =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    return bound_socket((const struct sockaddr *)&ss, len, !cfg->no_reuseport);
}

/* A stale socket file from an earlier run is removed; anything else there is an error. */
static int unix_socket(const char *path)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(sun.sun_path)) {
        return TAM_EINVAL;
    }
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        (void)unlink(path);
    }
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, n);
    return bound_socket((const struct sockaddr *)&sun, (socklen_t)sizeof(sun), false);
}

static void on_reject_closed(uv_handle_t *h)
{
    struct tam_net_conn *c = h->data;
    struct tam_http_server *srv = c->srv;
    tam_free(c);
    tam_net__server_handle_closed(srv);
}

static void reject(struct tam_http_server *srv, struct tam_net_conn *c)
{
    c->srv = srv;
    c->h.handle.data = c;
    srv->handles++;
    uv_close(&c->h.handle, on_reject_closed);
}

static int init_stream(struct tam_http_server *srv, struct tam_net_conn *c)
{
    return srv->is_unix ? uv_pipe_init(srv->loop, &c->h.pipe, 0)
                        : uv_tcp_init(srv->loop, &c->h.tcp);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct tam_http_server *srv = server->data;
    if (status < 0) {
        tam_log(TAM_LOG_WARN, "event=accept_failed srv=%s err=%s", srv->name, uv_err_name(status));
        return;
    }
    struct tam_net_conn *c = tam_calloc(1, sizeof(*c));
    if (c == NULL || init_stream(srv, c) != 0) {
        /* Without a handle the pending connection stays queued and libuv stops watching
         * the listener until the next accept; log loudly, this is out of memory. */
        tam_log(TAM_LOG_ERROR, "event=accept_nomem srv=%s", srv->name);
        tam_free(c);
        return;
    }
    int err = uv_accept(server, &c->h.stream);
    if (err != 0 || srv->draining || srv->stats.conns_open >= srv->limits.max_connections) {
        if (err == 0) {
            srv->stats.drop_max_conns++;
            tam_log(TAM_LOG_INFO, "event=conn_refused srv=%s reason=max_connections open=%llu",
                    srv->name, (unsigned long long)srv->stats.conns_open);
        }
        reject(srv, c);
        return;
    }
    tam_net__server_conn_added(srv, c);
    tam_net__conn_accepted(srv, c);
}

static int open_listener(struct tam_http_server *srv, int fd)
{
    int err = srv->is_unix ? uv_pipe_init(srv->loop, &srv->listener.pipe, 0)
                           : uv_tcp_init(srv->loop, &srv->listener.tcp);
    if (err != 0) {
        close(fd);
        return err;
    }
    srv->listener.handle.data = srv;
    srv->listener_open = true;
    srv->handles++;
    err =
        srv->is_unix ? uv_pipe_open(&srv->listener.pipe, fd) : uv_tcp_open(&srv->listener.tcp, fd);
    if (err != 0) {
        close(fd); /* libuv did not take it */
    }
    return err;
}

static void read_port(struct tam_http_server *srv)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    if (uv_tcp_getsockname(&srv->listener.tcp, (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    srv->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int tam_net__listen(struct tam_http_server *srv, const struct tam_http_server_config *cfg)
{
    int fd = srv->is_unix ? unix_socket(cfg->unix_path) : tcp_socket(cfg);
    if (fd < 0) {
        return fd;
    }
    int err = open_listener(srv, fd);
    if (err == 0) {
        err =
            uv_listen(&srv->listener.stream, cfg->backlog > 0 ? cfg->backlog : 511, on_connection);
    }
    if (err != 0) {
        return err;
    }
    if (!srv->is_unix) {
        read_port(srv);
    }
    tam_log(TAM_LOG_INFO, "event=listen srv=%s addr=%s port=%u tls=%d", srv->name,
            srv->is_unix ? cfg->unix_path : (cfg->host != NULL ? cfg->host : "127.0.0.1"),
            (unsigned)srv->port, srv->tls != NULL);
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct tam_http_server *srv = h->data;
    if (srv->is_unix && srv->unix_path != NULL) {
        (void)unlink(srv->unix_path);
    }
    tam_net__server_handle_closed(srv);
}

void tam_net__listener_close(struct tam_http_server *srv)
{
    if (!srv->listener_open) {
        return;
    }
    srv->listener_open = false;
    uv_close(&srv->listener.handle, on_listener_closed);
}
