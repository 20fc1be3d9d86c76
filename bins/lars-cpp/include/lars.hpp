//! lars.hpp: the lars client for C++17, header-only RAII over liblarsclient (lars.h).
//!
//! Errors are exceptions (`lars::Error`, with the `lars::Status` code): C++17 has no
//! `std::expected`, a constructor can report failure no other way, and a call that failed
//! leaves the caller nothing to call, so the happy path stays free of checks. Loops that expect
//! `Overloaded` or `NoRoute` as a normal answer use the `try_get_host` overloads, which are
//! `noexcept` and return the status instead.
//!
//! `lars::Client` is thread-safe (share one). `lars::Lease` is too, but one per thread is
//! faster. Both are move-only and free their handle on destruction; a lease outlives the client
//! that made it without harm.
#ifndef LARS_HPP
#define LARS_HPP

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "lars.h"

namespace lars {

/// Why a call failed; the values are liblarsclient's `LARS_E*` codes (1-3 are Lars's own).
enum class Status : int {
    Ok = LARS_OK,
    Overloaded = LARS_EOVERLOADED,
    AgentError = LARS_EAGENT,
    NoRoute = LARS_ENOROUTE,
    Timeout = LARS_ETIMEOUT,
    Malformed = LARS_EMALFORMED,
    Io = LARS_EIO,
    InvalidArgument = LARS_EINVALID,
    Internal = LARS_EINTERNAL,
};

/// How a call to a host went.
enum class Outcome : int {
    Ok = LARS_OUTCOME_OK,
    Fail = LARS_OUTCOME_FAIL,
    Overload = LARS_OUTCOME_OVERLOAD,
};

/// A failed call: `status()` says what kind, `what()` says why.
class Error : public std::runtime_error {
public:
    Error(Status status, const std::string& message)
        : std::runtime_error(std::string(lars_status_name(static_cast<int>(status))) + ": " + message),
          status_(status) {}
    Status status() const noexcept { return status_; }

private:
    Status status_;
};

namespace detail {
inline void check(int status) {
    if (status != LARS_OK) throw Error(static_cast<Status>(status), lars_last_error());
}
}  // namespace detail

/// A host: its IP in text, its port, and (from `get_route`) its weight. No allocation.
class Host {
public:
    Host() noexcept : raw_{} {}
    explicit Host(const lars_host& raw) noexcept : raw_(raw) {}
    const char* ip() const noexcept { return raw_.ip; }
    std::uint16_t port() const noexcept { return raw_.port; }
    /// Its weight in the route; 0 when it came from `get_host`.
    std::uint32_t weight() const noexcept { return raw_.weight; }
    /// `"10.0.0.1:80"` or `"[2001:db8::1]:80"`.
    std::string address() const {
        std::string ip(raw_.ip);
        return (ip.find(':') == std::string::npos ? ip : "[" + ip + "]") + ":" + std::to_string(raw_.port);
    }
    const lars_host* raw() const noexcept { return &raw_; }
    lars_host* raw() noexcept { return &raw_; }

private:
    lars_host raw_;
};

/// Every host of a route and the store's version of them.
struct Route {
    std::uint64_t version = 0;
    std::vector<Host> hosts;
};

/// A route leased in process: `get_host` is a local pick, reports go to the agent in summaries.
class Lease {
public:
    Lease(Lease&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
    Lease& operator=(Lease&& other) noexcept {
        std::swap(raw_, other.raw_);
        return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    /// Sends the last counts to the agent.
    ~Lease() { lars_lease_free(raw_); }

    /// A host for the next call; throws `lars::Error`.
    Host get_host() const {
        Host host;
        detail::check(lars_lease_get_host(raw_, host.raw()));
        return host;
    }
    /// A host for `key` under consistent hashing; throws `lars::Error`.
    Host get_host(std::uint64_t key) const {
        Host host;
        detail::check(lars_lease_get_host_keyed(raw_, key, host.raw()));
        return host;
    }
    /// Like `get_host`, returning the status instead of throwing.
    Status try_get_host(Host& host) const noexcept {
        return static_cast<Status>(lars_lease_get_host(raw_, host.raw()));
    }
    /// How a call to `host` went.
    void report(const Host& host, Outcome outcome, std::chrono::microseconds latency) const {
        detail::check(lars_lease_report(raw_, host.raw(), static_cast<int>(outcome), micros(latency)));
    }
    /// Sends the call counts to the agent now.
    void flush() const { detail::check(lars_lease_flush(raw_)); }
    /// The store's version of the hosts in use.
    std::uint64_t version() const {
        std::uint64_t version = 0;
        detail::check(lars_lease_version(raw_, &version));
        return version;
    }

private:
    friend class Client;
    explicit Lease(lars_lease* raw) noexcept : raw_(raw) {}
    static std::uint32_t micros(std::chrono::microseconds latency) noexcept {
        auto us = latency.count();
        return us < 0 ? 0 : us > 0xffffffffLL ? 0xffffffffu : static_cast<std::uint32_t>(us);
    }
    lars_lease* raw_;
};

/// A client of the local agent. Thread-safe.
class Client {
public:
    /// `agents`: the agent's API endpoints, comma-separated ("" for 127.0.0.1:8888-8890);
    /// `timeout` per attempt (0 for 200 ms); `retries` after the first attempt.
    explicit Client(const std::string& agents = "",
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                    std::uint32_t retries = 2)
        : raw_(nullptr) {
        auto ms = timeout.count();
        if (ms < 0 || ms > 0xffffffffLL) throw Error(Status::InvalidArgument, "timeout out of range");
        detail::check(lars_client_new(agents.empty() ? nullptr : agents.c_str(), static_cast<std::uint32_t>(ms),
                                      retries, &raw_));
    }
    Client(Client&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
    Client& operator=(Client&& other) noexcept {
        std::swap(raw_, other.raw_);
        return *this;
    }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client() { lars_client_free(raw_); }

    /// A host for the next call to `(modid, cmdid)`; throws `lars::Error`.
    Host get_host(std::int32_t modid, std::int32_t cmdid) const {
        Host host;
        detail::check(lars_get_host(raw_, modid, cmdid, host.raw()));
        return host;
    }
    /// A host for `key` on consistent-hash routes; throws `lars::Error`.
    Host get_host(std::int32_t modid, std::int32_t cmdid, std::uint64_t key) const {
        Host host;
        detail::check(lars_get_host_keyed(raw_, modid, cmdid, key, host.raw()));
        return host;
    }
    /// Like `get_host`, returning the status instead of throwing (`lars_last_error()` has why).
    Status try_get_host(std::int32_t modid, std::int32_t cmdid, Host& host) const noexcept {
        return static_cast<Status>(lars_get_host(raw_, modid, cmdid, host.raw()));
    }
    /// How a call to `host` went. Fire and forget.
    void report(std::int32_t modid, std::int32_t cmdid, const Host& host, Outcome outcome,
                std::chrono::microseconds latency) const {
        detail::check(lars_report(raw_, modid, cmdid, host.raw(), static_cast<int>(outcome), Lease::micros(latency)));
    }
    /// Every host of `(modid, cmdid)`.
    Route get_route(std::int32_t modid, std::int32_t cmdid) const {
        Route route;
        std::vector<lars_host> hosts(16);
        std::size_t count = 0;
        for (;;) {
            int status = lars_get_route(raw_, modid, cmdid, hosts.data(), hosts.size(), &count, &route.version);
            if (status == LARS_EINVALID && count > hosts.size()) {
                hosts.resize(count);  // more hosts than room: ask again with room for them
                continue;
            }
            detail::check(status);
            route.hosts.clear();
            for (std::size_t i = 0; i < count; i++) route.hosts.emplace_back(hosts[i]);
            return route;
        }
    }
    /// Makes the agent fetch the route before the first `get_host` (the original's `reg_init`).
    void reg_init(std::int32_t modid, std::int32_t cmdid, std::uint32_t attempts = 3) const {
        detail::check(lars_reg_init(raw_, modid, cmdid, attempts));
    }
    /// Leases `(modid, cmdid)` for picks in process.
    Lease lease(std::int32_t modid, std::int32_t cmdid) const {
        lars_lease* raw = nullptr;
        detail::check(lars_lease_new(raw_, modid, cmdid, &raw));
        return Lease(raw);
    }

private:
    lars_client* raw_;
};

}  // namespace lars

#endif  // LARS_HPP
