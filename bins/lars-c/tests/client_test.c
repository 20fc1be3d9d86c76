/* client_test.c: liblarsclient against real daemons, run by `cargo xtask test` (xtask/src/clients.rs).
 *
 * The harness starts lars-dns on a route file, lars-reporter on a statistics file and lars-agent,
 * and passes: LARS_TEST_AGENT (the agent's API endpoints), LARS_TEST_DEAD_AGENT (an address with
 * nothing behind it), LARS_TEST_ROUTES (the route file) and LARS_TEST_MODID (this language's
 * modid). This program adds a route to the file and checks every call; the harness then checks
 * that the reports reached lars-reporter. Exit status 0 means every check passed.
 */
#define _DEFAULT_SOURCE /* usleep */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lars.h"

static int failures = 0;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, " (last error: %s)\n", lars_last_error());           \
            failures++;                                                          \
        }                                                                        \
    } while (0)

static const char *env(const char *name) {
    const char *value = getenv(name);
    if (value == NULL) {
        fprintf(stderr, "%s is not set: run this through `cargo xtask test`\n", name);
        exit(2);
    }
    return value;
}

/* Adds `modid cmdid 127.0.0.1:port` lines to the route file, atomically as `lars route` does. */
static void add_routes(const char *path, int modid, int cmdid, const int *ports, int n) {
    char temp[4096];
    snprintf(temp, sizeof temp, "%s.c.tmp", path);
    FILE *in = fopen(path, "r");
    FILE *out = fopen(temp, "w");
    if (out == NULL) {
        perror(temp);
        exit(2);
    }
    if (in != NULL) {
        char line[512];
        while (fgets(line, sizeof line, in) != NULL) fputs(line, out);
        fclose(in);
    }
    for (int i = 0; i < n; i++) fprintf(out, "%d %d 127.0.0.1:%d\n", modid, cmdid, ports[i]);
    fclose(out);
    if (rename(temp, path) != 0) {
        perror("rename");
        exit(2);
    }
}

static int is_one_of(const lars_host *host, const int *ports, int n) {
    if (strcmp(host->ip, "127.0.0.1") != 0) return 0;
    for (int i = 0; i < n; i++)
        if (host->port == ports[i]) return 1;
    return 0;
}

static int modid;
static const int ports[2] = {10001, 10002};

struct worker {
    lars_client *client;
    int ok;
};

static void *work(void *arg) {
    struct worker *w = arg;
    lars_lease *lease = NULL;
    if (lars_lease_new(w->client, modid, 1, &lease) != LARS_OK) return NULL;
    for (int i = 0; i < 200; i++) {
        lars_host host;
        if (lars_get_host(w->client, modid, 1, &host) == LARS_OK && is_one_of(&host, ports, 2) &&
            lars_report(w->client, modid, 1, &host, LARS_OUTCOME_OK, 100) == LARS_OK)
            w->ok++;
        if (lars_lease_get_host(lease, &host) == LARS_OK && is_one_of(&host, ports, 2) &&
            lars_lease_report(lease, &host, LARS_OUTCOME_OK, 100) == LARS_OK)
            w->ok++;
    }
    lars_lease_free(lease);
    return NULL;
}

int main(void) {
    const char *agents = env("LARS_TEST_AGENT");
    const char *dead = env("LARS_TEST_DEAD_AGENT");
    const char *routes = env("LARS_TEST_ROUTES");
    modid = atoi(env("LARS_TEST_MODID"));

    lars_client *client = NULL;
    CHECK(lars_client_new(agents, 200, 2, &client) == LARS_OK, "client for %s", agents);
    if (client == NULL) return 1;

    /* A route added in the store is seen through the agent. */
    lars_host host;
    CHECK(lars_get_host(client, modid, 1, &host) == LARS_ENOROUTE, "route %d 1 is not there yet", modid);
    add_routes(routes, modid, 1, ports, 2);
    lars_host hosts[4];
    size_t count = 0;
    uint64_t version = 0;
    int status = LARS_ENOROUTE;
    for (int i = 0; i < 100 && !(status == LARS_OK && count == 2); i++) {
        status = lars_get_route(client, modid, 1, hosts, 4, &count, &version);
        if (status != LARS_OK || count != 2) usleep(50 * 1000);
    }
    CHECK(status == LARS_OK && count == 2, "the new route has 2 hosts (status %s, count %zu)",
          lars_status_name(status), count);
    CHECK(version > 0, "the route has a version");
    CHECK(is_one_of(&hosts[0], ports, 2) && is_one_of(&hosts[1], ports, 2) && hosts[0].weight >= 1,
          "route hosts %s:%u %s:%u", hosts[0].ip, hosts[0].port, hosts[1].ip, hosts[1].port);
    size_t needed = 0;
    CHECK(lars_get_route(client, modid, 1, hosts, 1, &needed, NULL) == LARS_EINVALID && needed == 2,
          "a too-small array is refused and the size given (%zu)", needed);

    /* Per call: get_host and report. */
    for (int i = 0; i < 50; i++) {
        CHECK(lars_get_host(client, modid, 1, &host) == LARS_OK && is_one_of(&host, ports, 2), "get_host %d", i);
        CHECK(lars_report(client, modid, 1, &host, i % 10 == 0 ? LARS_OUTCOME_FAIL : LARS_OUTCOME_OK, 250) == LARS_OK,
              "report %d", i);
    }
    CHECK(lars_get_host_keyed(client, modid, 1, 42, &host) == LARS_OK && is_one_of(&host, ports, 2), "keyed get_host");
    CHECK(lars_reg_init(client, modid, 1, 3) == LARS_OK, "reg_init");

    /* A lease: picks in process, counts to the agent. */
    lars_lease *lease = NULL;
    CHECK(lars_lease_new(client, modid, 1, &lease) == LARS_OK, "lease");
    if (lease != NULL) {
        uint64_t leased_version = 0;
        CHECK(lars_lease_version(lease, &leased_version) == LARS_OK && leased_version == version, "lease version");
        for (int i = 0; i < 1000; i++) {
            CHECK(lars_lease_get_host(lease, &host) == LARS_OK && is_one_of(&host, ports, 2), "lease get_host %d", i);
            CHECK(lars_lease_report(lease, &host, LARS_OUTCOME_OK, 120) == LARS_OK, "lease report %d", i);
        }
        CHECK(lars_lease_get_host_keyed(lease, 7, &host) == LARS_OK, "lease keyed get_host");
        CHECK(lars_lease_flush(lease) == LARS_OK, "lease flush");
        lars_lease_free(lease);
    }

    /* Many threads on one client at once. */
    enum { THREADS = 8 };
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i].client = client;
        workers[i].ok = 0;
        pthread_create(&threads[i], NULL, work, &workers[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK(workers[i].ok == 400, "thread %d: %d of 400 calls worked", i, workers[i].ok);
    }

    /* Errors: an unknown route, bad arguments, a dead agent. */
    CHECK(lars_get_host(client, modid, 99, &host) == LARS_ENOROUTE, "unknown route");
    CHECK(strstr(lars_last_error(), "no such route") != NULL, "its message: %s", lars_last_error());
    CHECK(lars_report(client, modid, 1, &host, 9, 0) == LARS_EINVALID, "bad outcome");
    CHECK(strstr(lars_last_error(), "outcome 9") != NULL, "its message: %s", lars_last_error());
    CHECK(lars_get_host(NULL, modid, 1, &host) == LARS_EINVALID, "NULL client");
    CHECK(lars_get_host(client, modid, 1, NULL) == LARS_EINVALID, "NULL host");
    lars_client *bad = NULL;
    CHECK(lars_client_new("127.0.0.1", 0, 0, &bad) == LARS_EINVALID && bad == NULL, "agent without a port");
    lars_client *gone = NULL;
    CHECK(lars_client_new(dead, 50, 1, &gone) == LARS_OK, "client for the dead agent");
    if (gone != NULL) {
        CHECK(lars_get_host(gone, modid, 1, &host) == LARS_ETIMEOUT, "a dead agent is a timeout");
        CHECK(strcmp(lars_last_error(), "no answer from the agent") == 0, "its message: %s", lars_last_error());
        lars_client_free(gone);
    }

    lars_client_free(client);
    if (failures == 0) printf("c client: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
