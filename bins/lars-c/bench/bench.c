/* bench.c: get_host + report pairs per second through liblarsclient, per call and leased, one
 * thread. Run by `cargo xtask bench clients` with LARS_BENCH_AGENT, LARS_BENCH_MODID and
 * LARS_BENCH_SECONDS; prints `per-call N` and `leased N` (pairs per second). */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lars.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int fail(const char *what, int status) {
    fprintf(stderr, "%s: %s: %s\n", what, lars_status_name(status), lars_last_error());
    return 1;
}

int main(void) {
    const char *agents = getenv("LARS_BENCH_AGENT");
    const char *modid_text = getenv("LARS_BENCH_MODID");
    const char *seconds_text = getenv("LARS_BENCH_SECONDS");
    if (!agents || !modid_text || !seconds_text) {
        fprintf(stderr, "run this through `cargo xtask bench clients`\n");
        return 2;
    }
    int modid = atoi(modid_text);
    double seconds = atof(seconds_text);
    lars_client *client = NULL;
    int status = lars_client_new(agents, 200, 2, &client);
    if (status) return fail("client", status);
    if ((status = lars_reg_init(client, modid, 1, 20))) return fail("reg_init", status);

    lars_host host;
    long pairs = 0;
    double start = now(), end = start + seconds;
    while (now() < end) {
        for (int i = 0; i < 64; i++, pairs++) {
            if ((status = lars_get_host(client, modid, 1, &host))) return fail("get_host", status);
            if ((status = lars_report(client, modid, 1, &host, LARS_OUTCOME_OK, 100))) return fail("report", status);
        }
    }
    printf("per-call %.0f\n", pairs / (now() - start));

    lars_lease *lease = NULL;
    if ((status = lars_lease_new(client, modid, 1, &lease))) return fail("lease", status);
    pairs = 0;
    start = now();
    end = start + seconds;
    while (now() < end) {
        for (int i = 0; i < 4096; i++, pairs++) {
            if ((status = lars_lease_get_host(lease, &host))) return fail("lease get_host", status);
            if ((status = lars_lease_report(lease, &host, LARS_OUTCOME_OK, 100))) return fail("lease report", status);
        }
    }
    printf("leased %.0f\n", pairs / (now() - start));
    lars_lease_free(lease);
    lars_client_free(client);
    return 0;
}
