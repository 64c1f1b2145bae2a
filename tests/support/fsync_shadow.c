/* LD_PRELOAD shim for tests/store_power_loss.rs: models what survives a
 * power cut. On every fsync/fdatasync of a file or directory under
 * $SHADOW_WATCH it records, before the real call, what that call makes
 * durable: a regular file's whole content (copied into $SHADOW_DIR), or a
 * directory's entries (name and inode). Whatever was never fsynced is what a
 * power cut may drop; the test rebuilds the directory from the records only.
 * Not modelled: torn writes inside an fsynced file, a drive that lies about
 * its cache, ext4's habit of committing more than POSIX promises. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long counter;

static void record(int fd) {
    const char *watch = getenv("SHADOW_WATCH"), *shadow = getenv("SHADOW_DIR");
    if (!watch || !shadow) return;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = 0;
    size_t wl = strlen(watch);
    if (strncmp(path, watch, wl) != 0 || (path[wl] != 0 && path[wl] != '/')) return;
    const char *rel = path[wl] ? path + wl + 1 : ".";
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    char line[1 << 15];
    int len = 0;
    if (S_ISREG(st.st_mode)) {
        unsigned long c = __sync_fetch_and_add(&counter, 1);
        char copy[4096], tmp[4200];
        snprintf(copy, sizeof copy, "%s/c%d-%lu", shadow, (int)getpid(), c);
        snprintf(tmp, sizeof tmp, "%s.tmp", copy);
        int in = open(path, O_RDONLY);
        if (in < 0) return;
        int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out < 0) { close(in); return; }
        char buf[1 << 15];
        ssize_t r;
        while ((r = read(in, buf, sizeof buf)) > 0) {
            if (write(out, buf, (size_t)r) != r) break;
        }
        close(in);
        close(out);
        rename(tmp, copy);
        len = snprintf(line, sizeof line, "F %lu %s\n", (unsigned long)st.st_ino, copy);
    } else if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return;
        len = snprintf(line, sizeof line, "D %s", rel);
        struct dirent *e;
        while ((e = readdir(d)) && len < (int)sizeof line - 300) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            len += snprintf(line + len, sizeof line - len, " %lu:%s", (unsigned long)e->d_ino, e->d_name);
        }
        closedir(d);
        len += snprintf(line + len, sizeof line - len, "\n");
    } else {
        return;
    }
    char logp[4096];
    snprintf(logp, sizeof logp, "%s/log", shadow);
    int lf = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (lf < 0) return;
    if (write(lf, line, (size_t)len) != len) { /* the test sees a short log */ }
    close(lf);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    record(fd);
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    record(fd);
    return real(fd);
}
