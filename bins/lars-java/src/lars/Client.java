/** The lars client for Java: get_host, report, get_route and leases against the local lars-agent. */
package lars;

import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.PortUnreachableException;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A client of the local agent, speaking its native UDP protocol (docs/PROTOCOL.md). Thread-safe:
 * share one between threads. Each call borrows a socket from a pool per agent port, so threads
 * never read each other's replies; every wait has a timeout and is retried; a reply is matched
 * by its exact sequence number. Behaves as the Rust client ({@code lars_std::client}) does.
 *
 * <pre>{@code
 * try (Client client = new Client("127.0.0.1:8888,127.0.0.1:8889,127.0.0.1:8890")) {
 *     Host host = client.getHost(1001, 1);
 *     long start = System.nanoTime();
 *     boolean ok = callMyService(host.ip(), host.port());
 *     client.report(1001, 1, host, ok ? Outcome.OK : Outcome.FAIL, Duration.ofNanos(System.nanoTime() - start));
 * }
 * }</pre>
 */
public final class Client implements AutoCloseable {
    /** How long {@link #regInit} waits between asks for a route the agent is still fetching. */
    static final Duration REG_INIT_SPACING = Duration.ofMillis(50);

    private final List<InetSocketAddress> agents;
    final Duration timeout;
    private final int retries;
    private final List<ConcurrentLinkedDeque<Conn>> pools = new ArrayList<>();
    private final AtomicInteger seq = new AtomicInteger(1);

    /** A client of the agent on 127.0.0.1:8888-8890, 200 ms per attempt, 2 retries. */
    public Client() {
        this("127.0.0.1:8888,127.0.0.1:8889,127.0.0.1:8890");
    }

    /**
     * A client of the agent at {@code agents}, 200 ms per attempt, 2 retries.
     *
     * @param agents the agent's API endpoints, "ip:port,ip:port,..."
     * @throws IllegalArgumentException if an address is not numeric IP:PORT
     */
    public Client(String agents) {
        this(agents, Duration.ofMillis(200), 2);
    }

    /**
     * A client of the agent at {@code agents} ("ip:port,..."; a route's requests go to endpoint
     * {@code (modid + cmdid) mod n}), waiting {@code timeout} per attempt, retrying {@code retries}
     * times.
     *
     * @param agents the agent's API endpoints, "ip:port,ip:port,..."
     * @param timeout how long one attempt waits for its answer
     * @param retries attempts after the first
     * @throws IllegalArgumentException if an address is not numeric IP:PORT or a number is out of range
     */
    public Client(String agents, Duration timeout, int retries) {
        if (agents == null) throw new IllegalArgumentException("agents is null");
        if (timeout == null || timeout.isNegative() || timeout.isZero() || timeout.toMillis() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("timeout must be positive, not " + timeout);
        }
        if (retries < 0) throw new IllegalArgumentException("retries must be >= 0, not " + retries);
        List<InetSocketAddress> parsed = new ArrayList<>();
        for (String agent : agents.split(",")) parsed.add(parseAgent(agent.trim()));
        this.agents = List.copyOf(parsed);
        this.timeout = timeout;
        this.retries = retries;
        for (int i = 0; i < parsed.size(); i++) pools.add(new ConcurrentLinkedDeque<>());
    }

    private static InetSocketAddress parseAgent(String text) {
        int colon = text.lastIndexOf(':');
        try {
            if (colon > 0) {
                String host = text.substring(0, colon);
                int port = Integer.parseInt(text.substring(colon + 1));
                boolean bracketed = host.startsWith("[") && host.endsWith("]");
                if (host.contains(":") != bracketed) throw new IllegalArgumentException();
                if (port >= 0 && port <= 65535) {
                    return new InetSocketAddress(Wire.parseIp(bracketed ? host.substring(1, host.length() - 1) : host), port);
                }
            }
        } catch (IllegalArgumentException e) {
            // fall through to the error below (NumberFormatException included)
        }
        throw new IllegalArgumentException("agent address `" + text + "` is not IP:PORT");
    }

    int nextSeq() {
        return seq.getAndIncrement();
    }

    InetSocketAddress agentFor(int modid, int cmdid) {
        return agents.get(index(modid, cmdid));
    }

    private int index(int modid, int cmdid) {
        return (int) Math.floorMod((long) modid + cmdid, (long) agents.size());
    }

    /** A pooled socket with its receive buffer, so a call allocates neither. */
    private static final class Conn {
        final DatagramSocket socket;
        final byte[] buf = new byte[Wire.HEADER + Wire.MAX_BODY];
        final DatagramPacket packet = new DatagramPacket(buf, buf.length);

        Conn(DatagramSocket socket) {
            this.socket = socket;
        }
    }

    private interface Call<T> {
        T run(Conn conn) throws IOException, LarsException;
    }

    private <T> T withSocket(int modid, int cmdid, Call<T> call) throws LarsException {
        ConcurrentLinkedDeque<Conn> pool = pools.get(index(modid, cmdid));
        Conn conn = pool.pollFirst();
        try {
            if (conn == null) {
                DatagramSocket socket = new DatagramSocket();
                conn = new Conn(socket);
                socket.connect(agentFor(modid, cmdid));
                socket.setSoTimeout((int) timeout.toMillis());
            }
            return call.run(conn);
        } catch (IOException e) {
            throw new LarsException(LarsException.Status.IO, "socket error: " + e.getMessage(), e);
        } finally {
            // A late answer to a failed call is skipped by its seq, so the socket goes back.
            if (conn != null) pool.addFirst(conn);
        }
    }

    private interface Ours<T> {
        /** The reply if it answers our request, else null. */
        T parse(byte[] datagram, int len) throws Wire.WireException;
    }

    private <T> T request(Conn conn, byte[] request, int replyId, Ours<T> ours) throws IOException, LarsException {
        DatagramSocket socket = conn.socket;
        byte[] buf = conn.buf;
        DatagramPacket packet = conn.packet;
        DatagramPacket out = new DatagramPacket(request, request.length);
        for (int attempt = 0; attempt <= retries; attempt++) {
            socket.send(out);
            while (true) {
                try {
                    packet.setLength(buf.length);
                    socket.receive(packet);
                } catch (SocketTimeoutException e) {
                    break;
                } catch (PortUnreachableException e) {
                    sleep(timeout); // nothing listens yet: the agent may be starting
                    break;
                }
                try {
                    if (Wire.frameMsgid(buf, packet.getLength()) != replyId) continue;
                } catch (Wire.WireException e) {
                    continue; // not a frame for us
                }
                try {
                    T reply = ours.parse(buf, packet.getLength());
                    if (reply != null) return reply;
                } catch (Wire.WireException e) {
                    throw new LarsException(LarsException.Status.MALFORMED, "malformed answer from the agent: " + e.getMessage());
                }
            }
        }
        throw new LarsException(LarsException.Status.TIMEOUT, "no answer from the agent");
    }

    static void sleep(Duration duration) {
        try {
            Thread.sleep(duration.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The failure a getHost answer's code means, as the Rust client says it (a success here came without its host). */
    static LarsException failure(int code) {
        return switch (code) {
            case Wire.OVERLOAD -> new LarsException(LarsException.Status.OVERLOADED, "every host of the route is overloaded");
            case Wire.NO_EXIST -> new LarsException(LarsException.Status.NO_ROUTE, "no such route (or the agent is still fetching it)");
            case Wire.SYSTEM_ERROR -> new LarsException(LarsException.Status.AGENT_ERROR,
                    "the agent refused the request: its route table is full of routes in use (`route_table_full` in `lars stats`);"
                            + " retry later, when a route idle for the agent's `route_idle_evict` gives way");
            case Wire.SUCC -> new LarsException(LarsException.Status.MALFORMED, "malformed answer from the agent: a success without a host");
            default -> unexpectedCode(code);
        };
    }

    /** An answer carrying a code its message does not use: the agent broke the protocol. */
    static LarsException unexpectedCode(int code) {
        return new LarsException(LarsException.Status.MALFORMED,
                "malformed answer from the agent: return code " + code + ", which that answer does not carry");
    }

    /**
     * A host for the next call to {@code (modid, cmdid)}.
     *
     * @param modid the service's module id
     * @param cmdid the service's command id
     * @return the host to call
     * @throws LarsException NO_ROUTE, OVERLOADED, TIMEOUT, ...
     */
    public Host getHost(int modid, int cmdid) throws LarsException {
        return getHost(modid, cmdid, null);
    }

    /**
     * A host for the next call, for {@code key} on consistent-hash routes.
     *
     * @param modid the service's module id
     * @param cmdid the service's command id
     * @param key pins a caller to a host on consistent-hash routes; null for none
     * @return the host to call
     * @throws LarsException NO_ROUTE, OVERLOADED, TIMEOUT, ...
     */
    public Host getHost(int modid, int cmdid, Long key) throws LarsException {
        int seq = nextSeq();
        byte[] request = Wire.getHostRequest(seq, modid, cmdid, key);
        Wire.GetHostResponse reply = withSocket(modid, cmdid, conn -> request(conn, request, Wire.GET_HOST_RESPONSE, (d, n) -> {
            Wire.GetHostResponse r = Wire.parseGetHostResponse(d, n);
            return r.seq() == seq ? r : null;
        }));
        if (reply.code() == Wire.SUCC && reply.host() != null) return reply.host();
        throw failure(reply.code());
    }

    static long latencyUs(Duration latency) {
        if (latency == null || latency.isNegative()) throw new IllegalArgumentException("latency must be >= 0, not " + latency);
        long us = latency.getSeconds() > 4_294 ? Long.MAX_VALUE : latency.toNanos() / 1000;
        return Math.min(us, 0xFFFF_FFFFL);
    }

    static void checkHost(Host host) {
        if (host == null) throw new IllegalArgumentException("host is null");
        if (host.port() < 0 || host.port() > 65535) throw new IllegalArgumentException("port " + host.port() + " is outside 0..65535");
        Wire.parseIp(host.ip());
    }

    /**
     * Reports how a call to {@code host} went, and how long it took. Fire and forget.
     *
     * @param modid the service's module id
     * @param cmdid the service's command id
     * @param host the host called
     * @param outcome how the call went
     * @param latency how long it took
     * @throws LarsException IO if the datagram could not be sent
     * @throws IllegalArgumentException if the host's IP is not numeric, or an argument is null or negative
     */
    public void report(int modid, int cmdid, Host host, Outcome outcome, Duration latency) throws LarsException {
        checkHost(host);
        if (outcome == null) throw new IllegalArgumentException("outcome is null");
        byte[] datagram = Wire.report(modid, cmdid, host, outcome, latencyUs(latency));
        withSocket(modid, cmdid, conn -> {
            conn.socket.send(new DatagramPacket(datagram, datagram.length));
            return null;
        });
    }

    /**
     * Every host of {@code (modid, cmdid)}.
     *
     * @param modid the service's module id
     * @param cmdid the service's command id
     * @return the hosts with their weights, and the store's version of them
     * @throws LarsException NO_ROUTE, TIMEOUT, ...
     */
    public Route getRoute(int modid, int cmdid) throws LarsException {
        int seq = nextSeq();
        byte[] request = Wire.getRouteRequest(seq, modid, cmdid);
        Wire.RouteResponse reply = withSocket(modid, cmdid, conn -> request(conn, request, Wire.ROUTE_RESPONSE, (d, n) -> {
            Wire.RouteResponse r = Wire.parseRouteResponse(d, n);
            return r.seq() == seq ? r : null;
        }));
        if (reply.code() == Wire.SUCC) return new Route(reply.version(), reply.hosts());
        // A route answer is a success or "no route": any other code breaks the protocol.
        throw reply.code() == Wire.NO_EXIST ? failure(Wire.NO_EXIST) : unexpectedCode(reply.code());
    }

    /**
     * Makes the agent fetch a route before the first {@code getHost} (the original's
     * {@code reg_init}): asks up to {@code attempts} times, 50 ms apart, until it has hosts.
     *
     * @param modid the service's module id
     * @param cmdid the service's command id
     * @param attempts how many times to ask
     * @return the route
     * @throws LarsException NO_ROUTE if it has no hosts after every attempt, TIMEOUT, ...
     */
    public Route regInit(int modid, int cmdid, int attempts) throws LarsException {
        LarsException last = failure(Wire.NO_EXIST);
        for (int attempt = 0; attempt < Math.max(attempts, 1); attempt++) {
            if (attempt > 0) sleep(REG_INIT_SPACING);
            try {
                return getRoute(modid, cmdid);
            } catch (LarsException e) {
                if (e.status() != LarsException.Status.NO_ROUTE && e.status() != LarsException.Status.TIMEOUT) throw e;
                last = e;
            }
        }
        throw last;
    }

    /**
     * Leases {@code (modid, cmdid)} for picks in process; see {@link Lease}.
     *
     * @param modid the service's module id
     * @param cmdid the service's command id
     * @return the lease; close it to send its last counts
     * @throws LarsException NO_ROUTE, TIMEOUT, ... if the agent does not have the route in time
     */
    public Lease lease(int modid, int cmdid) throws LarsException {
        long patience = timeout.toMillis() * (retries + 1L);
        int attempts = (int) Math.max(1, Math.min(Integer.MAX_VALUE, (patience + 49) / 50));
        Route route = regInit(modid, cmdid, attempts);
        try {
            return new Lease(this, modid, cmdid, route);
        } catch (IOException e) {
            throw new LarsException(LarsException.Status.IO, "socket error: " + e.getMessage(), e);
        }
    }

    /** Closes the pooled sockets. Calls after this still work (they open new ones). */
    @Override
    public void close() {
        for (ConcurrentLinkedDeque<Conn> pool : pools) {
            Conn conn;
            while ((conn = pool.pollFirst()) != null) conn.socket.close();
        }
    }
}
