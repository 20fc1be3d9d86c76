/**
 * The Java client against real daemons, run by {@code cargo xtask test} (xtask/src/clients.rs),
 * which passes LARS_TEST_AGENT, LARS_TEST_DEAD_AGENT, LARS_TEST_ROUTES and LARS_TEST_MODID (see
 * bins/lars-c/tests/client_test.c); and the codec against the vectors of docs/PROTOCOL.md. Exit
 * status 0 means every check passed.
 */
package lars;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/** Every check, in order; failures are counted and printed, and the exit status says. */
public final class ClientTest {
    private static int failures = 0;
    private static final Set<Integer> PORTS = Set.of(10001, 10002);

    private ClientTest() {}

    private static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("FAIL: " + what);
            failures++;
        }
    }

    private static String env(String name) {
        String value = System.getenv(name);
        if (value == null) {
            System.err.println(name + " is not set: run this through `cargo xtask test`");
            System.exit(2);
        }
        return value;
    }

    private static boolean ours(Host host) {
        return host.ip().equals("127.0.0.1") && PORTS.contains(host.port());
    }

    private interface Body {
        void run() throws Exception;
    }

    /** The message of what {@code body} throws, if it is a {@code kind}; else a description of what happened. */
    private static String thrown(Class<? extends Exception> kind, Body body) {
        try {
            body.run();
            return "nothing thrown";
        } catch (Exception e) {
            return kind.isInstance(e) ? e.getMessage() : "wrong exception: " + e;
        }
    }

    private static String status(LarsException.Status expected, Body body) {
        try {
            body.run();
            return "nothing thrown";
        } catch (LarsException e) {
            return e.status() == expected ? e.getMessage() : "wrong status " + e.status() + ": " + e.getMessage();
        } catch (Exception e) {
            return "wrong exception: " + e;
        }
    }

    private static byte[] hex(String text) {
        return HexFormat.of().parseHex(text.replace(" ", ""));
    }

    private static void wireVectors() throws Exception {
        byte[] request = Wire.getHostRequest(7, 1001, 2, 42L);
        check(HexFormat.of().formatHex(request).equals("1001000006000000" + "07d20f04012a"), "GetHostRequest vector");
        byte[] response = hex("11010000 0c000000 07 d2 0f 04 00 01 00 0a 00 00 01 50");
        Wire.GetHostResponse reply = Wire.parseGetHostResponse(response, response.length);
        check(reply.seq() == 7 && reply.modid() == 1001 && reply.code() == 0 && reply.host().address().equals("10.0.0.1:80"),
                "GetHostResponse vector: " + reply);
        byte[] report = Wire.report(1001, 2, new Host("2001:db8::1", 8080), Outcome.OVERLOAD, 1500);
        check(HexFormat.of().formatHex(report, 8, report.length).equals("d20f040120010db8000000000000000000000001903f02dc0b"),
                "Report vector: " + HexFormat.of().formatHex(report, 8, report.length));
        byte[] route = hex("21010000 16000000 00 d2 0f 04 00 2a 02 00 0a 00 00 01 50 01 00 c0 a8 01 b1 90 3f 03");
        Wire.RouteResponse parsed = Wire.parseRouteResponse(route, route.length);
        check(parsed.version() == 42 && parsed.hosts().equals(List.of(new Host("10.0.0.1", 80, 1), new Host("192.168.1.177", 8080, 3))),
                "RouteResponse vector: " + parsed);
        byte[] stats = Wire.callStats(1001, 2, List.of(new Wire.HostStats(new Host("10.0.0.1", 80), 180, 5, 1, false, 90000, 2500)));
        check(HexFormat.of().formatHex(stats, 8, stats.length).equals("000001d20f04000a00000150b40105010090bf05c413"), "CallStats vector");
        byte[] truncated = hex("11010000 0b000000 07 d2 0f 04 00 01 00 0a 00 00 01");
        check(thrown(Wire.WireException.class, () -> Wire.parseGetHostResponse(truncated, truncated.length)).equals("truncated"), "strict: truncated");
        check(Wire.format(Wire.parseIp("2001:db8:0:0:1:0:0:1")).equals("2001:db8::1:0:0:1"), "IPv6 text as RFC 5952");
    }

    /** Adds two hosts for (modid, 1) to the route file, atomically as `lars route` does. */
    private static void addRoutes(Path file, int modid) throws IOException {
        StringBuilder text = new StringBuilder(Files.readString(file));
        for (int port : List.of(10001, 10002)) text.append(modid).append(" 1 127.0.0.1:").append(port).append('\n');
        Path temp = Path.of(file + ".java.tmp");
        Files.writeString(temp, text);
        Files.move(temp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    public static void main(String[] args) throws Exception {
        wireVectors();
        int modid = Integer.parseInt(env("LARS_TEST_MODID"));
        try (Client client = new Client(env("LARS_TEST_AGENT"), Duration.ofMillis(200), 2)) {
            // A route added in the store is seen.
            check(status(LarsException.Status.NO_ROUTE, () -> client.getHost(modid, 1)).startsWith("no such route"), "not there yet");
            addRoutes(Path.of(env("LARS_TEST_ROUTES")), modid);
            Route route = null;
            for (int i = 0; i < 100 && (route == null || route.hosts().size() != 2); i++) {
                try {
                    route = client.getRoute(modid, 1);
                } catch (LarsException e) {
                    if (e.status() != LarsException.Status.NO_ROUTE) throw e;
                }
                if (route == null || route.hosts().size() != 2) Thread.sleep(50);
            }
            check(route != null && route.hosts().size() == 2 && route.version() > 0, "the new route: " + route);
            if (route != null) for (Host h : route.hosts()) check(ours(h) && h.weight() >= 1, "route host " + h);

            // Per call.
            Set<Integer> seen = new HashSet<>();
            for (int i = 0; i < 50; i++) {
                Host host = client.getHost(modid, 1);
                check(ours(host), "get_host " + host);
                seen.add(host.port());
                client.report(modid, 1, host, i % 10 == 0 ? Outcome.FAIL : Outcome.OK, Duration.ofMillis(1));
            }
            check(seen.equals(PORTS), "both hosts used: " + seen);
            check(ours(client.getHost(modid, 1, 42L)), "keyed");
            check(client.regInit(modid, 1, 3).hosts().size() == 2, "reg_init");

            // A lease.
            {
                Lease lease = client.lease(modid, 1);
                check(route != null && lease.version() == route.version(), "lease version");
                seen.clear();
                for (int i = 0; i < 1000; i++) {
                    Host host = lease.getHost();
                    check(ours(host), "lease get_host " + host);
                    seen.add(host.port());
                    lease.report(host, Outcome.OK, Duration.ofNanos(120_000));
                }
                check(seen.equals(PORTS), "lease uses both hosts: " + seen);
                check(lease.getHost(7L).equals(lease.getHost(7L)), "a key keeps its host");
                lease.flush();
                lease.close();
                check(thrown(IllegalStateException.class, lease::getHost).equals("lease is closed"), "closed lease");
            }

            // The lease sets a host aside after 15 failures in a row; with both aside, it is overloaded.
            try (Lease lease = client.lease(modid, 1)) {
                Host bad = lease.getHost();
                for (int i = 0; i < 15; i++) lease.report(bad, Outcome.FAIL, Duration.ofMillis(1));
                Set<Integer> picked = new HashSet<>();
                for (int i = 0; i < 50; i++) picked.add(lease.getHost().port());
                check(picked.size() == 1 && !picked.contains(bad.port()), "a failing host is set aside: " + picked);
                Host good = lease.getHost();
                for (int i = 0; i < 15; i++) lease.report(good, Outcome.OVERLOAD, Duration.ofMillis(1));
                check(status(LarsException.Status.OVERLOADED, lease::getHost).equals("every host of the route is overloaded"),
                        "both set aside");
            }

            // Many threads on one client, each with its own lease too.
            AtomicInteger ok = new AtomicInteger();
            List<Thread> threads = new java.util.ArrayList<>();
            for (int t = 0; t < 8; t++) {
                Thread thread = new Thread(() -> {
                    try (Lease lease = client.lease(modid, 1)) {
                        for (int i = 0; i < 200; i++) {
                            Host host = client.getHost(modid, 1);
                            client.report(modid, 1, host, Outcome.OK, Duration.ofNanos(100_000));
                            Host leased = lease.getHost();
                            lease.report(leased, Outcome.OK, Duration.ofNanos(100_000));
                            if (ours(host) && ours(leased)) ok.incrementAndGet();
                        }
                    } catch (LarsException e) {
                        System.err.println("thread: " + e);
                    }
                });
                thread.start();
                threads.add(thread);
            }
            for (Thread thread : threads) thread.join();
            check(ok.get() == 8 * 200, "threads: " + ok.get() + " of 1600 pairs");

            // Errors.
            check(status(LarsException.Status.NO_ROUTE, () -> client.getHost(modid, 99)).equals("no such route (or the agent is still fetching it)"),
                    "unknown route");
            String message = thrown(IllegalArgumentException.class, () -> client.report(modid, 1, new Host("not-an-ip", 1), Outcome.OK, Duration.ZERO));
            check(message.equals("host ip `not-an-ip` is not an IP address"), "bad host: " + message);
            message = thrown(IllegalArgumentException.class, () -> client.report(modid, 1, new Host("127.0.0.1", 1), null, Duration.ZERO));
            check(message.equals("outcome is null"), "null outcome: " + message);
            message = thrown(IllegalArgumentException.class, () -> client.report(modid, 1, new Host("127.0.0.1", 1), Outcome.OK, Duration.ofMillis(-1)));
            check(message.startsWith("latency must be >= 0"), "negative latency: " + message);
            message = thrown(IllegalArgumentException.class, () -> new Client("localhost:8888"));
            check(message.equals("agent address `localhost:8888` is not IP:PORT"), "agent name: " + message);
            message = thrown(IllegalArgumentException.class, () -> new Client("127.0.0.1:1", Duration.ZERO, 1));
            check(message.startsWith("timeout must be positive"), "zero timeout: " + message);
            try (Client gone = new Client(env("LARS_TEST_DEAD_AGENT"), Duration.ofMillis(50), 1)) {
                message = status(LarsException.Status.TIMEOUT, () -> gone.getHost(modid, 1));
                check(message.equals("no answer from the agent"), "dead agent: " + message);
            }
        }
        if (failures == 0) System.out.println("java client: all checks passed");
        System.exit(failures == 0 ? 0 : 1);
    }
}
