/**
 * get_host + report pairs per second from Java, per call and leased, one thread, after a
 * second of warm-up for the JIT. Run by {@code cargo xtask bench clients} with LARS_BENCH_AGENT,
 * LARS_BENCH_MODID and LARS_BENCH_SECONDS; prints {@code per-call N} and {@code leased N}.
 */
package lars;

import java.time.Duration;

/** The benchmark's main class. */
public final class Bench {
    private Bench() {}

    private static double perCall(Client client, int modid, double seconds) throws LarsException {
        long pairs = 0;
        long start = System.nanoTime();
        long end = start + (long) (seconds * 1e9);
        Duration latency = Duration.ofNanos(100_000);
        while (System.nanoTime() < end) {
            for (int i = 0; i < 64; i++, pairs++) {
                Host host = client.getHost(modid, 1);
                client.report(modid, 1, host, Outcome.OK, latency);
            }
        }
        return pairs / ((System.nanoTime() - start) / 1e9);
    }

    private static double leased(Lease lease, double seconds) throws LarsException {
        long pairs = 0;
        long start = System.nanoTime();
        long end = start + (long) (seconds * 1e9);
        Duration latency = Duration.ofNanos(100_000);
        while (System.nanoTime() < end) {
            for (int i = 0; i < 4096; i++, pairs++) {
                Host host = lease.getHost();
                lease.report(host, Outcome.OK, latency);
            }
        }
        return pairs / ((System.nanoTime() - start) / 1e9);
    }

    public static void main(String[] args) throws Exception {
        String agents = System.getenv("LARS_BENCH_AGENT");
        int modid = Integer.parseInt(System.getenv("LARS_BENCH_MODID"));
        double seconds = Double.parseDouble(System.getenv("LARS_BENCH_SECONDS"));
        try (Client client = new Client(agents, Duration.ofMillis(200), 2)) {
            client.regInit(modid, 1, 20);
            perCall(client, modid, 1.0);
            System.out.printf("per-call %.0f%n", perCall(client, modid, seconds));
            try (Lease lease = client.lease(modid, 1)) {
                leased(lease, 1.0);
                System.out.printf("leased %.0f%n", leased(lease, seconds));
            }
        }
    }
}
