/* oneshot.c - one-shot (fresh process per lookup) timing of two NSS modules, interleaved.
 *
 * Run as root inside a private mount namespace (bench/run.py does this) where the lease
 * directory is already in place. Switches which module glibc loads by bind-mounting ours
 * over the system's libnss_libvirt{,_guest}.so.2 and unmounting it again, between runs, so
 * that both are loaded from the same path the same way (no LD_LIBRARY_PATH).
 *
 *   oneshot SYSDIR OURSDIR time RUNS CMD... --base BASECMD...
 *       RUNS rounds; each round runs CMD with ours, CMD with libvirt's and BASECMD (the
 *       process baseline), in an order that rotates every round so that drift (the other
 *       load on the machine, frequency changes) hits all three alike. After 3 unrecorded
 *       warm-up rounds, prints one line per run: "<ours|libvirt|base> <round> <wall µs>
 *       <cpu µs>".
 *   oneshot SYSDIR OURSDIR exec <ours|libvirt> CMD...
 *       puts that module in place and execs CMD (e.g. valgrind --tool=callgrind getent ...).
 *
 * Timing: wall = CLOCK_MONOTONIC from just before posix_spawn to the return of wait4; cpu =
 * the child's user + system time from wait4's rusage (the kernel's precise runtime, so
 * time spent waiting for a CPU on a loaded machine is not in it). The command's stdout goes
 * to /dev/null. A command that fails (exit status != 0) stops the
 * benchmark: a module that does not answer must not look fast.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *NAMES[] = {"libnss_libvirt.so.2", "libnss_libvirt_guest.so.2"};
static const char *g_sys, *g_ours;
static int g_cur = 0; /* 1: ours is mounted */

static void die(const char *what)
{
    fprintf(stderr, "oneshot: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void use(int ours)
{
    char src[4096], dst[4096];
    if (ours == g_cur)
        return;
    for (int i = 0; i < 2; i++) {
        snprintf(src, sizeof(src), "%s/%s", g_ours, NAMES[i]);
        snprintf(dst, sizeof(dst), "%s/%s", g_sys, NAMES[i]);
        if (ours) {
            if (mount(src, dst, NULL, MS_BIND, NULL) != 0)
                die(dst);
        } else if (umount2(dst, 0) != 0) {
            die(dst);
        }
    }
    g_cur = ours;
}

/* Whatever an earlier oneshot left mounted in this namespace goes: the system's modules. */
static void reset(void)
{
    char dst[4096];
    for (int i = 0; i < 2; i++) {
        snprintf(dst, sizeof(dst), "%s/%s", g_sys, NAMES[i]);
        while (umount2(dst, 0) == 0)
            ;
    }
    g_cur = 0;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Runs cmd; returns the wall time, and in *cpu the CPU time (user + system) it used. */
static double run(char **cmd, double *cpu)
{
    posix_spawn_file_actions_t fa;
    struct rusage ru;
    pid_t pid;
    int st;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    double t0 = now_us();
    int e = posix_spawnp(&pid, cmd[0], &fa, NULL, cmd, environ);
    if (e != 0) {
        errno = e;
        die(cmd[0]);
    }
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR)
            die("wait4");
    double t = now_us() - t0;
    *cpu = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 +
           ru.ru_stime.tv_usec;
    posix_spawn_file_actions_destroy(&fa);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "oneshot: %s (module: %s) failed with status %d\n", cmd[0],
                g_cur ? "ours" : "libvirt", st);
        exit(1);
    }
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: oneshot SYSDIR OURSDIR time RUNS CMD... --base BASECMD...\n"
                        "       oneshot SYSDIR OURSDIR exec ours|libvirt CMD...\n");
        return 2;
    }
    g_sys = argv[1];
    g_ours = argv[2];
    reset();
    if (!strcmp(argv[3], "exec")) {
        use(!strcmp(argv[4], "ours"));
        execvp(argv[5], argv + 5);
        die(argv[5]);
    }
    if (strcmp(argv[3], "time") != 0)
        return 2;
    long runs = atol(argv[4]);
    char **cmd = argv + 5, **base = NULL;
    for (char **a = cmd; *a; a++)
        if (!strcmp(*a, "--base")) {
            *a = NULL;
            base = a + 1;
        }
    if (!base || !*base || !*cmd) {
        fprintf(stderr, "oneshot: time needs CMD... --base BASECMD...\n");
        return 2;
    }
    static const char *LABEL[] = {"ours", "libvirt", "base"};
    for (long r = -3; r < runs; r++) {
        for (int k = 0; k < 3; k++) {
            /* rotate the order: ours/libvirt/base, libvirt/base/ours, base/ours/libvirt, ...
             * and reverse it every other round, so each takes each position equally */
            int which = (int)(((r + 3) + (r % 2 ? 2 - k : k)) % 3);
            double t, cpu;
            if (which == 2) {
                t = run(base, &cpu);
            } else {
                use(which == 0);
                t = run(cmd, &cpu);
            }
            if (r >= 0)
                printf("%s %ld %.1f %.0f\n", LABEL[which], r, t, cpu);
        }
    }
    use(0);
    return 0;
}
