// client_test.cpp: lars.hpp against real daemons, run by `cargo xtask test` (xtask/src/clients.rs),
// which passes LARS_TEST_AGENT, LARS_TEST_DEAD_AGENT, LARS_TEST_ROUTES and LARS_TEST_MODID (see
// bins/lars-c/tests/client_test.c). Linked with the static liblarsclient.a. Exit 0: all passed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lars.hpp"

using namespace std::chrono_literals;

static int failures = 0;

#define CHECK(cond, what)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            std::cerr << "FAIL " << __FILE__ << ":" << __LINE__ << ": " << #cond << ": " << what \
                      << "\n";                                                              \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

static std::string env(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr) {
        std::cerr << name << " is not set: run this through `cargo xtask test`\n";
        std::exit(2);
    }
    return value;
}

// Adds routes to the route file atomically, as `lars route` does.
static void add_routes(const std::string& path, int modid, int cmdid, const std::vector<int>& ports) {
    std::stringstream text;
    text << std::ifstream(path).rdbuf();
    for (int port : ports) text << modid << " " << cmdid << " 127.0.0.1:" << port << "\n";
    std::string temp = path + ".cpp.tmp";
    std::ofstream(temp) << text.str();
    if (std::rename(temp.c_str(), path.c_str()) != 0) {
        std::perror("rename");
        std::exit(2);
    }
}

static bool ours(const lars::Host& host) {
    return std::strcmp(host.ip(), "127.0.0.1") == 0 && (host.port() == 10001 || host.port() == 10002);
}

// Runs `body`, which must throw lars::Error with `status`; returns its message.
template <typename F>
static std::string throws(lars::Status status, F body) {
    try {
        body();
    } catch (const lars::Error& e) {
        if (e.status() == status) return e.what();
        return std::string("wrong status: ") + e.what();
    }
    return "nothing thrown";
}

int main() {
    const std::string agents = env("LARS_TEST_AGENT");
    const int modid = std::atoi(env("LARS_TEST_MODID").c_str());
    lars::Client client(agents, 200ms, 2);

    // A route added in the store is seen.
    lars::Host none;
    CHECK(client.try_get_host(modid, 1, none) == lars::Status::NoRoute, "not there yet");
    add_routes(env("LARS_TEST_ROUTES"), modid, 1, {10001, 10002});
    lars::Route route;
    for (int i = 0; i < 100 && route.hosts.size() != 2; i++) {
        try {
            route = client.get_route(modid, 1);
        } catch (const lars::Error& e) {
            if (e.status() != lars::Status::NoRoute) throw;
        }
        if (route.hosts.size() != 2) std::this_thread::sleep_for(50ms);
    }
    CHECK(route.hosts.size() == 2 && route.version > 0, "route of " << route.hosts.size() << " hosts");
    for (const auto& host : route.hosts) CHECK(ours(host) && host.weight() >= 1, host.address());

    // Per call.
    std::set<std::string> seen;
    for (int i = 0; i < 50; i++) {
        lars::Host host = client.get_host(modid, 1);
        CHECK(ours(host), host.address());
        seen.insert(host.address());
        client.report(modid, 1, host, i % 10 ? lars::Outcome::Ok : lars::Outcome::Fail, 250us);
    }
    CHECK(seen.size() == 2, "both hosts are used, saw " << seen.size());
    CHECK(ours(client.get_host(modid, 1, 42)), "keyed");
    client.reg_init(modid, 1);

    // A lease, moved around as RAII values are.
    {
        lars::Lease first = client.lease(modid, 1);
        lars::Lease lease = std::move(first);
        CHECK(lease.version() == route.version, "lease version");
        for (int i = 0; i < 1000; i++) {
            lars::Host host = lease.get_host();
            CHECK(ours(host), host.address());
            lease.report(host, lars::Outcome::Ok, 120us);
        }
        CHECK(ours(lease.get_host(7)), "lease keyed");
        lease.flush();
        CHECK(throws(lars::Status::InvalidArgument, [&] { first.get_host(); }).find("lease is NULL") !=
                  std::string::npos,
              "a moved-from lease says so");
    }

    // Many threads on one client, each with a lease too.
    std::vector<std::thread> threads;
    std::vector<int> ok(8, 0);
    for (int t = 0; t < 8; t++) {
        threads.emplace_back([&, t] {
            try {
                lars::Lease lease = client.lease(modid, 1);
                for (int i = 0; i < 200; i++) {
                    lars::Host host = client.get_host(modid, 1);
                    client.report(modid, 1, host, lars::Outcome::Ok, 100us);
                    lars::Host leased = lease.get_host();
                    lease.report(leased, lars::Outcome::Ok, 100us);
                    ok[t] += ours(host) + ours(leased);
                }
            } catch (const lars::Error& e) {
                std::cerr << "thread " << t << ": " << e.what() << "\n";
            }
        });
    }
    for (auto& thread : threads) thread.join();
    for (int t = 0; t < 8; t++) CHECK(ok[t] == 400, "thread " << t << ": " << ok[t] << " of 400");

    // Errors.
    std::string message = throws(lars::Status::NoRoute, [&] { client.get_host(modid, 99); });
    CHECK(message.find("LARS_ENOROUTE: no such route") == 0, message);
    message = throws(lars::Status::InvalidArgument, [&] {
        lars::Host bad;
        client.report(modid, 1, bad, lars::Outcome::Ok, 1us);
    });
    CHECK(message.find("is not an IP address") != std::string::npos, message);
    message = throws(lars::Status::InvalidArgument, [&] { lars::Client("localhost"); });
    CHECK(message.find("`localhost` is not IP:PORT") != std::string::npos, message);
    lars::Client gone(env("LARS_TEST_DEAD_AGENT"), 50ms, 1);
    message = throws(lars::Status::Timeout, [&] { gone.get_host(modid, 1); });
    CHECK(message == "LARS_ETIMEOUT: no answer from the agent", message);

    if (failures == 0) std::cout << "c++ client: all checks passed\n";
    return failures == 0 ? 0 : 1;
}
