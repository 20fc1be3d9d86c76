// bench.cpp: get_host + report pairs per second through lars.hpp, per call and leased, one
// thread. Run by `cargo xtask bench clients` with LARS_BENCH_AGENT, LARS_BENCH_MODID and
// LARS_BENCH_SECONDS; prints `per-call N` and `leased N` (pairs per second).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "lars.hpp"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

int main() {
    const char* agents = std::getenv("LARS_BENCH_AGENT");
    const char* modid_text = std::getenv("LARS_BENCH_MODID");
    const char* seconds_text = std::getenv("LARS_BENCH_SECONDS");
    if (!agents || !modid_text || !seconds_text) {
        std::cerr << "run this through `cargo xtask bench clients`\n";
        return 2;
    }
    const int modid = std::atoi(modid_text);
    const auto duration = std::chrono::duration<double>(std::atof(seconds_text));
    try {
        lars::Client client(agents, 200ms, 2);
        client.reg_init(modid, 1, 20);
        long pairs = 0;
        auto start = Clock::now();
        while (Clock::now() - start < duration) {
            for (int i = 0; i < 64; i++, pairs++) {
                lars::Host host = client.get_host(modid, 1);
                client.report(modid, 1, host, lars::Outcome::Ok, 100us);
            }
        }
        std::printf("per-call %.0f\n", pairs / std::chrono::duration<double>(Clock::now() - start).count());
        lars::Lease lease = client.lease(modid, 1);
        pairs = 0;
        start = Clock::now();
        while (Clock::now() - start < duration) {
            for (int i = 0; i < 4096; i++, pairs++) {
                lars::Host host = lease.get_host();
                lease.report(host, lars::Outcome::Ok, 100us);
            }
        }
        std::printf("leased %.0f\n", pairs / std::chrono::duration<double>(Clock::now() - start).count());
    } catch (const lars::Error& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
    return 0;
}
