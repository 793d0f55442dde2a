/* qhub peer guard: TCP listeners of a user's kernels answer only their own uid and root.
 *
 * Loaded with LD_PRELOAD into every kernel of an embedded-mode user server (and whatever the
 * kernel starts: debugpy's adapter, a web app run from a notebook). Users on one machine share
 * the loopback interface, and a kernel's TCP listeners (the debugger's debugpy, above all) have no
 * authentication of their own. This library wraps accept() and accept4(): for each new TCP
 * connection it asks the kernel's socket table (NETLINK_SOCK_DIAG, an exact lookup of the
 * connecting socket, as `ss` does) which uid owns the other end, and resets the connection unless
 * that uid is the process's own or root. A connection whose other end cannot be found (it came
 * from another host, or went away) is reset too. Unix sockets and other families pass untouched.
 *
 * A refused connection is reset (no byte is read or written) and accept() goes on waiting for
 * the next one, so blocking and non-blocking listeners both behave as if it never came.
 *
 * Limits: it guards programs that call accept/accept4 through the C library (Python, Node, R,
 * Julia, most C/C++ programs). Statically linked programs and raw system calls (Go) bypass it;
 * a user can also remove it from their own processes (it protects them, not from them).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);
typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);

/* The uid owning the TCP socket whose local end is `peer` and remote end `local`; -1 if none. */
static long peer_uid(const struct sockaddr_storage *local, const struct sockaddr_storage *peer) {
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } request;
    memset(&request, 0, sizeof request);
    request.nlh.nlmsg_len = sizeof request;
    request.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    request.nlh.nlmsg_flags = NLM_F_REQUEST;
    request.req.sdiag_protocol = IPPROTO_TCP;
    request.req.idiag_states = ~0U;
    request.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    request.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *p = (const struct sockaddr_in *)peer;
        const struct sockaddr_in *l = (const struct sockaddr_in *)local;
        request.req.sdiag_family = AF_INET;
        request.req.id.idiag_sport = p->sin_port;
        request.req.id.idiag_dport = l->sin_port;
        memcpy(request.req.id.idiag_src, &p->sin_addr, 4);
        memcpy(request.req.id.idiag_dst, &l->sin_addr, 4);
    } else if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer;
        const struct sockaddr_in6 *l = (const struct sockaddr_in6 *)local;
        request.req.id.idiag_sport = p->sin6_port;
        request.req.id.idiag_dport = l->sin6_port;
        if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) && IN6_IS_ADDR_V4MAPPED(&l->sin6_addr)) {
            /* an IPv4 client of a dual-stack listener: its socket is an IPv4 one */
            request.req.sdiag_family = AF_INET;
            memcpy(request.req.id.idiag_src, &p->sin6_addr.s6_addr[12], 4);
            memcpy(request.req.id.idiag_dst, &l->sin6_addr.s6_addr[12], 4);
        } else {
            request.req.sdiag_family = AF_INET6;
            memcpy(request.req.id.idiag_src, &p->sin6_addr, 16);
            memcpy(request.req.id.idiag_dst, &l->sin6_addr, 16);
        }
    } else {
        return -1;
    }

    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -1;
    struct timeval timeout = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    long uid = -1;
    if (sendto(fd, &request, sizeof request, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
        goto done;
    union {
        struct nlmsghdr nlh;
        char bytes[8192];
    } answer;
    ssize_t got;
    do {
        got = recv(fd, &answer, sizeof answer, 0);
    } while (got < 0 && errno == EINTR);
    for (struct nlmsghdr *h = &answer.nlh; got > 0 && NLMSG_OK(h, (size_t)got); h = NLMSG_NEXT(h, got)) {
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
            break; /* NLMSG_ERROR (no such socket) or NLMSG_DONE */
        const struct inet_diag_msg *msg = NLMSG_DATA(h);
        /* exactly the connecting socket: its local end is the peer, its remote end is us */
        if (msg->id.idiag_sport == request.req.id.idiag_sport &&
            msg->id.idiag_dport == request.req.id.idiag_dport && msg->idiag_state != TCP_LISTEN) {
            uid = (long)msg->idiag_uid;
        }
        break;
    }
done:
    close(fd);
    return uid;
}

/* May the connection on `fd` (just accepted) stay open? */
static int allowed(int fd) {
    struct sockaddr_storage local, peer;
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0)
        return 0;
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6)
        return 1; /* unix sockets (the kernel's own channels) and anything else: not ours to judge */
    int type = 0;
    socklen_t type_len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_STREAM)
        return 1;
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) != 0)
        return 0;
    long uid = peer_uid(&local, &peer);
    return uid == 0 || (uid >= 0 && (uid_t)uid == getuid());
}

static void reset(int fd) {
    struct linger now = {1, 0}; /* close with RST: the client reads nothing, not even an orderly EOF */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
    close(fd);
}

/* accept4 through the C library, and the guard's decision on each connection. The caller's
 * address buffer is filled only for a connection that is kept. */
static int guarded(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags, int use_accept4) {
    static accept4_fn real_accept4;
    static accept_fn real_accept;
    if (!real_accept4)
        real_accept4 = (accept4_fn)dlsym(RTLD_NEXT, "accept4");
    if (!real_accept)
        real_accept = (accept_fn)dlsym(RTLD_NEXT, "accept");
    if (!(use_accept4 ? (void *)real_accept4 : (void *)real_accept)) {
        errno = ENOSYS; /* no C library function to wrap: accept nothing rather than unguarded */
        return -1;
    }
    for (;;) {
        int fd = use_accept4 ? real_accept4(sockfd, addr, addrlen, flags) : real_accept(sockfd, addr, addrlen);
        if (fd < 0)
            return fd;
        int saved = errno;
        if (allowed(fd)) {
            errno = saved;
            return fd;
        }
        reset(fd);
        errno = saved;
    }
}

int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags) {
    return guarded(sockfd, addr, addrlen, flags, 1);
}

int accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen) {
    return guarded(sockfd, addr, addrlen, 0, 0);
}
