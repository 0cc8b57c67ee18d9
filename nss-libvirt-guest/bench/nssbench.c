/* nssbench.c - in-process latency benchmark for NSS "hosts" modules
 * (libnss_libvirt.so.2 / libnss_libvirt_guest.so.2 or a drop-in replacement).
 *
 * Build:  gcc -O2 -Wall -o nssbench nssbench.c -ldl
 * Usage:  nssbench MODULE NAME [ITERATIONS] [MODE]
 *   MODULE  nss service name, e.g. libvirt or libvirt_guest
 *           (glibc API modes use __nss_configure_lookup("hosts", MODULE), so
 *            /etc/nsswitch.conf is irrelevant; direct modes dlopen
 *            libnss_MODULE.so.2 and call _nss_MODULE_* directly)
 *   MODE    gai      getaddrinfo(AF_UNSPEC, SOCK_STREAM)  -> module gethostbyname4_r
 *           gai4     getaddrinfo(AF_INET,   SOCK_STREAM)  -> module gethostbyname3_r/2_r
 *           ghbn2    gethostbyname2_r(AF_INET) (glibc API, 64 KiB buffer)
 *           direct4  _nss_MODULE_gethostbyname4_r (64 KiB buffer)
 *           direct2  _nss_MODULE_gethostbyname2_r(AF_INET) (64 KiB buffer)
 *           all      (default) run every mode
 * Output: one line per mode: result of the first call, mean and median and
 *         p90 microseconds per lookup over ITERATIONS calls (after 3 warm-ups), and the
 *         process's peak RSS so far (to show memory stays constant).
 * (virt-hostkit copy: adds maxrss_kb; otherwise as used for the anchor figures in doc/nss.md.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <nss.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

extern int __nss_configure_lookup(const char *dbname, const char *string);

typedef enum nss_status (*ghbn2_t)(const char *, int, struct hostent *, char *,
                                   size_t, int *, int *);
typedef enum nss_status (*ghbn4_t)(const char *, struct gaih_addrtuple **,
                                   char *, size_t, int *, int *, int32_t *);

static const char *g_mod, *g_name;
static ghbn2_t g_fn2;
static ghbn4_t g_fn4;
static char g_buf[65536];

/* each returns the number of addresses found (0 = miss / error) */
static int do_gai(int family)
{
    struct addrinfo hints, *res = NULL, *p;
    int n = 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(g_name, NULL, &hints, &res) != 0)
        return 0;
    for (p = res; p; p = p->ai_next)
        n++;
    freeaddrinfo(res);
    return n;
}
static int do_gai_unspec(void) { return do_gai(AF_UNSPEC); }
static int do_gai_inet(void) { return do_gai(AF_INET); }

static int do_ghbn2(void)
{
    struct hostent he, *r = NULL;
    int herr = 0, n = 0;
    if (gethostbyname2_r(g_name, AF_INET, &he, g_buf, sizeof(g_buf), &r, &herr) != 0 || !r)
        return 0;
    for (char **a = r->h_addr_list; *a; a++)
        n++;
    return n;
}

static int do_direct2(void)
{
    struct hostent he;
    int err, herr, n = 0;
    if (g_fn2(g_name, AF_INET, &he, g_buf, sizeof(g_buf), &err, &herr) != NSS_STATUS_SUCCESS)
        return 0;
    for (char **a = he.h_addr_list; *a; a++)
        n++;
    return n;
}

static int do_direct4(void)
{
    struct gaih_addrtuple *pat = NULL, *t;
    int err, herr, n = 0;
    int32_t ttl;
    if (g_fn4(g_name, &pat, g_buf, sizeof(g_buf), &err, &herr, &ttl) != NSS_STATUS_SUCCESS)
        return 0;
    for (t = pat; t; t = t->next)
        n++;
    return n;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench(const char *label, int (*fn)(void), long iters)
{
    double *t = malloc(sizeof(double) * iters), sum = 0;
    int first = fn();
    fn();
    fn();
    for (long i = 0; i < iters; i++) {
        double s = now_us();
        fn();
        t[i] = now_us() - s;
        sum += t[i];
    }
    qsort(t, iters, sizeof(double), cmpd);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%-8s module=%-14s name=%-14s results=%-3d iters=%-6ld mean_us=%10.2f median_us=%10.2f p90_us=%10.2f maxrss_kb=%ld\n",
           label, g_mod, g_name, first, iters, sum / iters, t[iters / 2],
           t[(long)(iters * 0.9)], ru.ru_maxrss);
    fflush(stdout);
    free(t);
}

int main(int argc, char **argv)
{
    char lib[256], sym[256];
    long iters;
    const char *mode;
    void *h;

    if (argc < 3) {
        fprintf(stderr, "usage: %s MODULE NAME [ITERATIONS] [gai|gai4|ghbn2|direct4|direct2|all]\n",
                argv[0]);
        return 2;
    }
    g_mod = argv[1];
    g_name = argv[2];
    iters = argc > 3 ? atol(argv[3]) : 1000;
    mode = argc > 4 ? argv[4] : "all";

    if (__nss_configure_lookup("hosts", g_mod) != 0) {
        perror("__nss_configure_lookup");
        return 2;
    }
    snprintf(lib, sizeof(lib), "libnss_%s.so.2", g_mod);
    if (!(h = dlopen(lib, RTLD_NOW))) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    snprintf(sym, sizeof(sym), "_nss_%s_gethostbyname2_r", g_mod);
    g_fn2 = (ghbn2_t)dlsym(h, sym);
    snprintf(sym, sizeof(sym), "_nss_%s_gethostbyname4_r", g_mod);
    g_fn4 = (ghbn4_t)dlsym(h, sym);

    int all = !strcmp(mode, "all");
    if (all || !strcmp(mode, "gai"))
        bench("gai", do_gai_unspec, iters);
    if (all || !strcmp(mode, "gai4"))
        bench("gai4", do_gai_inet, iters);
    if (all || !strcmp(mode, "ghbn2"))
        bench("ghbn2", do_ghbn2, iters);
    if ((all || !strcmp(mode, "direct4")) && g_fn4)
        bench("direct4", do_direct4, iters);
    if ((all || !strcmp(mode, "direct2")) && g_fn2)
        bench("direct2", do_direct2, iters);
    return 0;
}
