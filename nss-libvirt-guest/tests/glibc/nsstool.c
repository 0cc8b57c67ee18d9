/* nsstool.c - drive an NSS hosts module the way real programs do, for tests/glibc.rs.
 *
 *   nsstool gai SERVICE NAME [4|6|any]   __nss_configure_lookup("hosts", SERVICE), then
 *                                         getaddrinfo(NAME); prints one address per line
 *   nsstool direct SO SERVICE NAME        dlopen(SO) by path, _nss_SERVICE_gethostbyname2_r
 *                                         (AF_INET); prints status= and the addresses, and
 *                                         whether LD_LIBRARY_PATH reached the program
 * Exit: 0 answered, 2 not resolved, 3 usage/setup error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <nss.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

extern int __nss_configure_lookup(const char *dbname, const char *string);

typedef enum nss_status (*ghbn2_t)(const char *, int, struct hostent *, char *, size_t, int *, int *);

static int gai(const char *service, const char *name, const char *fam)
{
    struct addrinfo hints, *res = NULL, *p;
    char text[INET6_ADDRSTRLEN];
    int rc;

    if (__nss_configure_lookup("hosts", service) != 0) {
        perror("__nss_configure_lookup");
        return 3;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = !strcmp(fam, "4") ? AF_INET : !strcmp(fam, "6") ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0) {
        printf("gai-error: %s\n", gai_strerror(rc));
        return 2;
    }
    for (p = res; p; p = p->ai_next) {
        const void *a = p->ai_family == AF_INET
            ? (const void *)&((struct sockaddr_in *)p->ai_addr)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)p->ai_addr)->sin6_addr;
        unsigned scope = p->ai_family == AF_INET6
            ? ((struct sockaddr_in6 *)p->ai_addr)->sin6_scope_id : 0;
        /* A scope id (IPv6 link-local) is printed as ADDRESS%INDEX. */
        if (scope)
            printf("%s%%%u\n", inet_ntop(p->ai_family, a, text, sizeof(text)), scope);
        else
            printf("%s\n", inet_ntop(p->ai_family, a, text, sizeof(text)));
    }
    freeaddrinfo(res);
    return 0;
}

static int direct(const char *so, const char *service, const char *name)
{
    char sym[128], buf[4096], text[INET6_ADDRSTRLEN];
    struct hostent he;
    int err = 0, herr = 0;
    const char *llp = getenv("LD_LIBRARY_PATH");
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    ghbn2_t fn;

    printf("LD_LIBRARY_PATH=%s\n", llp ? llp : "(unset)");
    if (!h) {
        printf("dlopen: %s\n", dlerror());
        return 3;
    }
    snprintf(sym, sizeof(sym), "_nss_%s_gethostbyname2_r", service);
    fn = (ghbn2_t)dlsym(h, sym);
    if (!fn) {
        printf("dlsym %s failed\n", sym);
        return 3;
    }
    enum nss_status st = fn(name, AF_INET, &he, buf, sizeof(buf), &err, &herr);
    printf("status=%d\n", (int)st);
    if (st != NSS_STATUS_SUCCESS)
        return 2;
    for (char **a = he.h_addr_list; *a; a++)
        printf("%s\n", inet_ntop(AF_INET, *a, text, sizeof(text)));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "gai"))
        return gai(argv[2], argv[3], argc > 4 ? argv[4] : "any");
    if (argc == 5 && !strcmp(argv[1], "direct"))
        return direct(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: nsstool gai SERVICE NAME [4|6|any] | direct SO SERVICE NAME\n");
    return 3;
}
