#ifndef PETREL_CRESOLV_SHIM_H
#define PETREL_CRESOLV_SHIM_H
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/nameser.h>
#include <arpa/inet.h>
#include <resolv.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

/*
 * Thin wrappers over glibc's libresolv for Swift.
 *
 * glibc declares several resolver entry points through object-like macros (`#define res_ninit __res_ninit`),
 * which Swift does not import under their documented names, and reaches some state only through macros
 * (`ns_msg_count`) or through the private `_u._ext` part of `struct __res_state`. These helpers give Swift
 * stable names for them. They do no DNS parsing of their own: reading messages is left to `ns_initparse`,
 * `ns_parserr` and `dn_expand`.
 */

/* res_ninit(3): fills a caller-owned state from /etc/resolv.conf (or the built-in defaults). */
static inline int petrel_res_ninit(res_state statp) {
    return res_ninit(statp);
}

/* res_nclose(3): closes sockets and frees what res_ninit and res_nsend allocated in `statp`. */
static inline void petrel_res_nclose(res_state statp) {
    res_nclose(statp);
}

/* ns_msg_count(handle, section): the record count of one section of a parsed message. */
static inline int petrel_ns_msg_count(const ns_msg *handle, ns_sect section) {
    return ns_msg_count(*handle, section);
}

/*
 * Replaces the name servers of a state that res_ninit initialised, before any query is sent with it.
 *
 * `servers` holds `count` (1...MAXNS) socket addresses, each a `struct sockaddr_in` or a
 * `struct sockaddr_in6` (told apart by the family). IPv4 servers go into `nsaddr_list`, as res_send(3)
 * expects of applications; IPv6 servers, which do not fit there, go where glibc's own res_ninit puts the
 * IPv6 servers of resolv.conf: `nsaddr_list[i].sin_family` is 0 and `_u._ext.nsaddrs[i]` points to a
 * malloc'd `struct sockaddr_in6`, freed by res_nclose.
 *
 * Returns 0, or -1 when `count` is out of range, a family is unknown, or memory runs out.
 */
static inline int petrel_res_set_nameservers(res_state statp, const struct sockaddr_storage *servers, int count) {
    if (count < 1 || count > MAXNS) {
        return -1;
    }
    for (int i = 0; i < count; i++) {
        if (servers[i].ss_family != AF_INET && servers[i].ss_family != AF_INET6) {
            return -1;
        }
    }
    /* Drop what res_ninit put there (IPv6 servers of resolv.conf); no socket is open yet. */
    for (int i = 0; i < MAXNS; i++) {
        free(statp->_u._ext.nsaddrs[i]);
        statp->_u._ext.nsaddrs[i] = NULL;
        statp->_u._ext.nssocks[i] = -1;
        memset(&statp->nsaddr_list[i], 0, sizeof(statp->nsaddr_list[i]));
    }
    for (int i = 0; i < count; i++) {
        if (servers[i].ss_family == AF_INET) {
            memcpy(&statp->nsaddr_list[i], &servers[i], sizeof(struct sockaddr_in));
        } else {
            struct sockaddr_in6 *copy = malloc(sizeof(struct sockaddr_in6));
            if (copy == NULL) {
                statp->nscount = i;
                return -1;
            }
            memcpy(copy, &servers[i], sizeof(struct sockaddr_in6));
            statp->nsaddr_list[i].sin_family = 0;
            statp->_u._ext.nsaddrs[i] = copy;
        }
    }
    statp->nscount = count;
    /* Make res_send rebuild its private copy of the server list from the above. */
    statp->_u._ext.nscount = 0;
    return 0;
}

#endif
