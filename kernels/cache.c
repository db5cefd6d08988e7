/* Cache sizes of the CPU, detected once.
 *
 * Order: LEANCONV_CACHE (a forced answer, also how the tests reach the
 * fallback), then what the OS says (Linux sysfs, macOS sysctl, Windows
 * GetLogicalProcessorInformation), then CPUID on x86 (deterministic cache
 * parameters: leaf 4 on Intel, 0x8000001D on AMD/Hygon with TOPOEXT, else
 * AMD's 0x80000005/6), and conservative defaults for whatever is still
 * unknown.  Defaults are small on purpose: blocking for a cache smaller than
 * the real one costs a little speed; blocking for a bigger one thrashes. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200112L
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leanconv/cpu.h"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#define LC_CACHE_X86 1
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>
#endif
#if defined(_WIN32)
#include <windows.h>
#endif

#define LC_DEFAULT_L1D (32 * 1024)
#define LC_DEFAULT_L2 (256 * 1024)
#define LC_DEFAULT_L3 (2 * 1024 * 1024)

static lc_cache_sizes lc_caches;
#ifdef LC_CACHE_X86
static int lc_caches_from_cpuid(lc_cache_sizes *c);
#endif
static int lc_caches_ready;

/* "48K", "1M", "1048576", "2MiB" -> bytes; -1 when it is not a size (or
 * past 2^40, which no cache is). */
static long long lc_parse_size(const char *s, const char **end) {
    char *e;
    long long v = strtoll(s, &e, 10);
    if (e == s || v < 0 || v > (1LL << 40)) return -1;
    if (*e == 'k' || *e == 'K') { v *= 1024; e++; }
    else if (*e == 'm' || *e == 'M') { v *= 1024 * 1024; e++; }
    else if (*e == 'g' || *e == 'G') { v *= 1024LL * 1024 * 1024; e++; }
    if (e[0] == 'i' && (e[1] == 'B' || e[1] == 'b')) e += 2;
    else if (*e == 'B' || *e == 'b') e++;
    *end = e;
    return v;
}

/* LEANCONV_CACHE: "default" forces the fallback, "cpuid" skips the OS and
 * asks CPUID (x86; elsewhere it means "default"), "L1D,L2,L3" sets the sizes
 * (0 for L3 when there is none).  Returns 1 when it decided, 0 when unset,
 * and marks the source "invalid" when it cannot be read (the binding turns
 * that into an import error that quotes it). */
static int lc_caches_from_env(lc_cache_sizes *c) {
    const char *env = getenv("LEANCONV_CACHE");
    long long v[3];
    if (!env || !*env) return 0;
    if (strcmp(env, "default") == 0 || strcmp(env, "cpuid") == 0) {
        c->source = "default";
#ifdef LC_CACHE_X86
        if (strcmp(env, "cpuid") == 0 && lc_caches_from_cpuid(c)) c->source = "cpuid";
#endif
        return 1;
    }
    const char *p = env;
    for (int i = 0; i < 3; i++) {
        v[i] = lc_parse_size(p, &p);
        if (v[i] < 0 || (i < 2 && v[i] < 1024) || v[i] > (1LL << 40) ||
            *p != (i < 2 ? ',' : '\0')) {
            c->source = "invalid";
            return 1;
        }
        p++;
    }
    c->l1d = v[0];
    c->l2 = v[1];
    c->l3 = v[2];
    c->source = "LEANCONV_CACHE";
    return 1;
}

#if defined(__linux__)
static long long lc_read_size_file(const char *path) {
    char buf[64];
    const char *end;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return lc_parse_size(buf, &end);
}

static int lc_read_word(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = '\0';
    return n > 0;
}

static int lc_caches_from_sysfs(lc_cache_sizes *c) {
    int found = 0;
    for (int i = 0; i < 16; i++) {
        char path[128], type[32], level[8];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if (!lc_read_word(path, type, sizeof type)) break;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (!lc_read_word(path, level, sizeof level)) continue;
        if (strcmp(type, "Data") != 0 && strcmp(type, "Unified") != 0) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        long long size = lc_read_size_file(path);
        if (size <= 0) continue;
        if (level[0] == '1' && !c->l1d) { c->l1d = size; found = 1; }
        else if (level[0] == '2' && !c->l2) { c->l2 = size; found = 1; }
        else if (level[0] == '3' && !c->l3) { c->l3 = size; found = 1; }
    }
    return found;
}
#endif

#if defined(__APPLE__)
static long long lc_sysctl(const char *name) {
    long long v = 0;
    size_t len = sizeof v;
    if (sysctlbyname(name, &v, &len, NULL, 0) != 0) return 0;
    if (len == sizeof(int)) v = *(int *)&v; /* some keys are 32-bit */
    return v > 0 ? v : 0;
}

static int lc_caches_from_sysctl(lc_cache_sizes *c) {
    /* Apple silicon: the performance cores' caches (perflevel0); their L2
     * is shared by a cluster, so a core's share is what the blocking uses. */
    long long l1 = lc_sysctl("hw.perflevel0.l1dcachesize");
    long long l2 = lc_sysctl("hw.perflevel0.l2cachesize");
    long long share = lc_sysctl("hw.perflevel0.cpusperl2");
    if (!l1) l1 = lc_sysctl("hw.l1dcachesize");
    if (!l2) l2 = lc_sysctl("hw.l2cachesize");
    if (l2 && share > 1) l2 /= share;
    c->l1d = l1;
    c->l2 = l2;
    c->l3 = lc_sysctl("hw.l3cachesize");
    return l1 || l2;
}
#endif

#if defined(_WIN32)
static int lc_caches_from_windows(lc_cache_sizes *c) {
    DWORD bytes = 0;
    GetLogicalProcessorInformation(NULL, &bytes);
    if (bytes == 0) return 0;
    SYSTEM_LOGICAL_PROCESSOR_INFORMATION *info = (SYSTEM_LOGICAL_PROCESSOR_INFORMATION *)malloc(bytes);
    if (!info) return 0;
    int found = 0;
    if (GetLogicalProcessorInformation(info, &bytes)) {
        size_t n = bytes / sizeof *info;
        for (size_t i = 0; i < n; i++) {
            if (info[i].Relationship != RelationCache) continue;
            const CACHE_DESCRIPTOR *cd = &info[i].Cache;
            if (cd->Type != CacheData && cd->Type != CacheUnified) continue;
            long long size = (long long)cd->Size;
            if (cd->Level == 1 && !c->l1d) { c->l1d = size; found = 1; }
            else if (cd->Level == 2 && !c->l2) { c->l2 = size; found = 1; }
            else if (cd->Level == 3 && !c->l3) { c->l3 = size; found = 1; }
        }
    }
    free(info);
    return found;
}
#endif

#ifdef LC_CACHE_X86
/* Leaf 4 (Intel) and 0x8000001D (AMD) share one layout: type in EAX[4:0]
 * (0 = no more caches, 1 data, 3 unified), level in EAX[7:5]; size = ways x
 * partitions x line x sets from EBX and ECX. */
static int lc_caches_from_leaf(unsigned leaf, lc_cache_sizes *c) {
    int found = 0;
    for (unsigned i = 0; i < 16; i++) {
        unsigned r[4];
        lc_x86_cpuid(leaf, i, r);
        unsigned type = r[0] & 0x1f, level = (r[0] >> 5) & 7;
        if (type == 0) break;
        if (type != 1 && type != 3) continue;
        long long size = (long long)(((r[1] >> 22) & 0x3ff) + 1) * (((r[1] >> 12) & 0x3ff) + 1) *
                         ((r[1] & 0xfff) + 1) * ((long long)r[2] + 1);
        if (level == 1 && !c->l1d) { c->l1d = size; found = 1; }
        else if (level == 2 && !c->l2) { c->l2 = size; found = 1; }
        else if (level == 3 && !c->l3) { c->l3 = size; found = 1; }
    }
    return found;
}

static int lc_caches_from_cpuid(lc_cache_sizes *c) {
    unsigned r[4];
    char vendor[13];
    lc_x86_cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    memcpy(vendor, &r[1], 4);
    memcpy(vendor + 4, &r[3], 4);
    memcpy(vendor + 8, &r[2], 4);
    vendor[12] = '\0';
    if (strcmp(vendor, "GenuineIntel") == 0)
        return max_leaf >= 4 && lc_caches_from_leaf(4, c);
    if (strcmp(vendor, "AuthenticAMD") != 0 && strcmp(vendor, "HygonGenuine") != 0) return 0;
    lc_x86_cpuid(0x80000000u, 0, r);
    unsigned max_ext = r[0];
    if (max_ext >= 0x8000001Du) {
        lc_x86_cpuid(0x80000001u, 0, r);
        if (((r[2] >> 22) & 1) && lc_caches_from_leaf(0x8000001Du, c)) return 1; /* TOPOEXT */
    }
    if (max_ext < 0x80000006u) return 0;
    lc_x86_cpuid(0x80000005u, 0, r);
    c->l1d = (long long)(r[2] >> 24) * 1024;
    lc_x86_cpuid(0x80000006u, 0, r);
    c->l2 = (long long)(r[2] >> 16) * 1024;
    c->l3 = (long long)(r[3] >> 18) * 512 * 1024;
    return c->l1d || c->l2;
}
#endif

static void lc_detect_caches(lc_cache_sizes *c) {
    memset(c, 0, sizeof *c);
    c->source = "default";
    if (lc_caches_from_env(c)) {
        /* a forced answer is in range (checked when read) */
    } else {
        int found = 0;
#if defined(__linux__)
        if (!found && lc_caches_from_sysfs(c)) { found = 1; c->source = "sysfs"; }
#endif
#if defined(__APPLE__)
        if (!found && lc_caches_from_sysctl(c)) { found = 1; c->source = "sysctl"; }
#endif
#if defined(_WIN32)
        if (!found && lc_caches_from_windows(c)) { found = 1; c->source = "GetLogicalProcessorInformation"; }
#endif
#ifdef LC_CACHE_X86
        if (!found) {
            memset(c, 0, sizeof *c);
            if (lc_caches_from_cpuid(c)) { found = 1; c->source = "cpuid"; }
            else c->source = "default";
        }
#endif
        (void)found;
    }
    /* whatever is still unknown (or nonsense) falls back to the defaults */
    if (c->l1d < 1024 || c->l1d > (1LL << 40)) c->l1d = LC_DEFAULT_L1D;
    if (c->l2 < 1024 || c->l2 > (1LL << 40)) c->l2 = LC_DEFAULT_L2;
    if (c->l3 < 0 || c->l3 > (1LL << 40)) c->l3 = LC_DEFAULT_L3;
    if (strcmp(c->source, "default") == 0 || strcmp(c->source, "invalid") == 0) {
        c->l1d = LC_DEFAULT_L1D;
        c->l2 = LC_DEFAULT_L2;
        c->l3 = LC_DEFAULT_L3;
    }
}

const lc_cache_sizes *lc_cpu_caches(void) {
    /* First called from the module's import (under the GIL), so no race. */
    if (!lc_caches_ready) {
        lc_detect_caches(&lc_caches);
        lc_caches_ready = 1;
    }
    return &lc_caches;
}
