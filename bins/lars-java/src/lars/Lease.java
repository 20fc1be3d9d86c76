/** A route leased in process: picks without a round trip, counts summarised to the agent. */
package lars;

import java.io.IOException;
import java.net.PortUnreachableException;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A route leased from the agent: {@link #getHost()} picks in process (smooth weighted round
 * robin; a host that fails 15 times in a row is set aside for 15 s, as the Lars policy's
 * simplest rule does) and reports go to the agent as {@code CallStats} summaries every 100 ms.
 * The route is refreshed every second without blocking a call; until an answer comes, or if
 * the agent is gone, the lease serves the hosts it has. Thread-safe (its methods are
 * synchronized), but one lease per thread is faster. Close it to send the last counts.
 */
public final class Lease implements AutoCloseable {
    private static final long TTL_NANOS = Duration.ofSeconds(1).toNanos();
    private static final long FLUSH_NANOS = Duration.ofMillis(100).toNanos();
    private static final int CONTIN_ERR_LIMIT = 15;
    private static final long SET_ASIDE_NANOS = Duration.ofSeconds(15).toNanos();

    private static final class Leased {
        final Host host;
        int weight;
        long current;
        int continErr;
        long asideUntil;
        long succ, err, overload, latencySum, latencyMax;

        Leased(Host host) {
            this.host = new Host(host.ip(), host.port());
            this.weight = Math.max(host.weight(), 1);
        }
    }

    private final Client client;
    private final int modid;
    private final int cmdid;
    private DatagramChannel channel;
    private final ByteBuffer buf = ByteBuffer.allocate(Wire.HEADER + Wire.MAX_BODY);
    private long version;
    private List<Leased> hosts = new ArrayList<>();
    private Map<Host, Leased> byHost = new HashMap<>();
    private long refreshAt;
    private long flushAt;
    private long nextDrive;
    private boolean asking;
    private int askedSeq;
    private long askedAt;
    private int goneAnswers;

    Lease(Client client, int modid, int cmdid, Route route) throws IOException {
        this.client = client;
        this.modid = modid;
        this.cmdid = cmdid;
        this.channel = DatagramChannel.open();
        channel.connect(client.agentFor(modid, cmdid));
        channel.configureBlocking(false);
        this.version = route.version();
        setHosts(route.hosts());
        long now = System.nanoTime();
        refreshAt = now + TTL_NANOS;
        flushAt = now + FLUSH_NANOS;
        nextDrive = Math.min(refreshAt, flushAt);
    }

    private void setHosts(List<Host> fresh) {
        List<Leased> list = new ArrayList<>();
        Map<Host, Leased> map = new HashMap<>();
        for (Host h : fresh) {
            Host key = new Host(h.ip(), h.port());
            Leased leased = byHost.getOrDefault(key, new Leased(h));
            leased.weight = Math.max(h.weight(), 1);
            list.add(leased);
            map.put(key, leased);
        }
        hosts = list;
        byHost = map;
    }

    private DatagramChannel open() {
        if (channel == null) throw new IllegalStateException("lease is closed");
        return channel;
    }

    /**
     * A host for the next call.
     *
     * @return the host to call
     * @throws LarsException OVERLOADED if every host is set aside, NO_ROUTE if the route was deleted
     */
    public Host getHost() throws LarsException {
        return getHost(null);
    }

    /**
     * A host for the next call; the same {@code key} keeps its host while that host is live.
     *
     * @param key the affinity key; null for none
     * @return the host to call
     * @throws LarsException OVERLOADED if every host is set aside, NO_ROUTE if the route was deleted
     */
    public synchronized Host getHost(Long key) throws LarsException {
        DatagramChannel channel = open();
        long now = System.nanoTime();
        if (now - nextDrive >= 0) drive(channel, now);
        if (hosts.isEmpty()) throw Client.failure(Wire.NO_EXIST);
        Leased best = null;
        long total = 0;
        long bestHash = 0;
        for (Leased h : hosts) {
            if (h.asideUntil - now > 0) continue;
            if (key != null) {
                // Rendezvous hashing over the live hosts.
                long hash = mix(key ^ ((long) h.host.ip().hashCode() << 16 ^ h.host.port()));
                if (best == null || Long.compareUnsigned(hash, bestHash) > 0) {
                    best = h;
                    bestHash = hash;
                }
            } else {
                h.current += h.weight;
                total += h.weight;
                if (best == null || h.current > best.current) best = h;
            }
        }
        if (best == null) throw Client.failure(Wire.OVERLOAD);
        best.current -= total;
        return best.host;
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    /**
     * Reports how a call to {@code host} went: to the lease's balancer at once, to the agent with
     * the next summary.
     *
     * @param host the host called
     * @param outcome how the call went
     * @param latency how long it took
     */
    public synchronized void report(Host host, Outcome outcome, Duration latency) {
        Client.checkHost(host);
        if (outcome == null) throw new IllegalArgumentException("outcome is null");
        long us = Client.latencyUs(latency);
        DatagramChannel channel = open();
        long now = System.nanoTime();
        Leased h = byHost.get(host.weight() == 0 ? host : new Host(host.ip(), host.port()));
        if (h != null) {
            if (outcome == Outcome.OK) {
                h.succ++;
                h.continErr = 0;
            } else {
                h.err++;
                if (outcome == Outcome.OVERLOAD) h.overload++;
                if (++h.continErr >= CONTIN_ERR_LIMIT) {
                    h.continErr = 0;
                    h.asideUntil = now + SET_ASIDE_NANOS;
                }
            }
            h.latencySum += us;
            h.latencyMax = Math.max(h.latencyMax, us);
        }
        if (now - nextDrive >= 0) drive(channel, now);
    }

    /**
     * Sends the call counts to the agent now.
     *
     * @throws LarsException IO if the datagram could not be sent
     */
    public synchronized void flush() throws LarsException {
        try {
            sendCounts(open(), System.nanoTime());
        } catch (IOException e) {
            throw new LarsException(LarsException.Status.IO, "socket error: " + e.getMessage(), e);
        }
    }

    /**
     * The store's version of the hosts in use.
     *
     * @return the version
     */
    public synchronized long version() {
        open();
        return version;
    }

    private void sendCounts(DatagramChannel channel, long now) throws IOException {
        flushAt = now + FLUSH_NANOS;
        List<Wire.HostStats> entries = new ArrayList<>();
        for (Leased h : hosts) {
            if (h.succ == 0 && h.err == 0) continue;
            entries.add(new Wire.HostStats(h.host, h.succ, h.err, h.overload, h.asideUntil - now > 0, h.latencySum, h.latencyMax));
            h.succ = h.err = h.overload = h.latencySum = h.latencyMax = 0;
        }
        if (!entries.isEmpty()) channel.write(ByteBuffer.wrap(Wire.callStats(modid, cmdid, entries)));
    }

    /** Takes the agent's answers and sends what is due; a lost datagram is like one lost on the way. */
    private void drive(DatagramChannel channel, long now) {
        while (asking) {
            buf.clear();
            int n;
            try {
                n = channel.read(buf);
            } catch (PortUnreachableException e) {
                break;
            } catch (IOException e) {
                break;
            }
            if (n <= 0) break;
            try {
                if (Wire.frameMsgid(buf.array(), n) != Wire.ROUTE_RESPONSE) continue;
                Wire.RouteResponse reply = Wire.parseRouteResponse(buf.array(), n);
                if (reply.seq() != askedSeq) continue;
                asking = false;
                if (reply.code() == Wire.SUCC) {
                    goneAnswers = 0;
                    version = reply.version();
                    setHosts(reply.hosts());
                } else if (reply.code() == Wire.NO_EXIST && ++goneAnswers >= 2) {
                    // Believed on the second answer in a row, a ttl apart: an agent that just
                    // restarted says NoExist until it has the route again.
                    setHosts(List.of());
                }
            } catch (Wire.WireException e) {
                // not an answer we can use; the next refresh asks again
            }
        }
        try {
            if (!asking && now - refreshAt >= 0 || asking && now - askedAt >= client.timeout.toNanos()) {
                askedSeq = client.nextSeq();
                askedAt = now;
                asking = true;
                refreshAt = now + TTL_NANOS;
                channel.write(ByteBuffer.wrap(Wire.getRouteRequest(askedSeq, modid, cmdid)));
            }
            if (now - flushAt >= 0) sendCounts(channel, now);
        } catch (IOException e) {
            // best effort: a refresh is asked again, counts go with the next summary
        }
        nextDrive = Math.min(refreshAt, flushAt);
        if (asking) nextDrive = Math.min(nextDrive, now + 1_000_000);
    }

    /** Sends the last counts and releases the lease; later calls throw IllegalStateException. */
    @Override
    public synchronized void close() {
        if (channel == null) return;
        try {
            sendCounts(channel, System.nanoTime());
        } catch (IOException e) {
            // the agent is gone: nothing to tell it
        }
        try {
            channel.close();
        } catch (IOException e) {
            // closing a UDP channel has nothing to flush
        }
        channel = null;
    }
}
