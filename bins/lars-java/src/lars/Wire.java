/** The native lars wire protocol (docs/PROTOCOL.md §1, §4): frames and the API link's postcard bodies. */
package lars;

import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Encoders and strict decoders for the messages between a client and its agent. */
final class Wire {
    static final int GET_HOST_REQUEST = 0x110;
    static final int GET_HOST_RESPONSE = 0x111;
    static final int REPORT = 0x112;
    static final int GET_ROUTE_REQUEST = 0x120;
    static final int ROUTE_RESPONSE = 0x121;
    static final int CALL_STATS = 0x130;
    static final int HEADER = 8;
    static final int MAX_BODY = 65527;

    static final int SUCC = 0;
    static final int OVERLOAD = 1;
    static final int SYSTEM_ERROR = 2;
    static final int NO_EXIST = 3;

    private Wire() {}

    /** A datagram that does not decode. */
    static final class WireException extends Exception {
        private static final long serialVersionUID = 1L;

        WireException(String message) {
            super(message);
        }
    }

    /** A body being written, with room for the frame header in front. */
    static final class Writer {
        private byte[] bytes = new byte[64];
        private int len = HEADER;

        void u8(int b) {
            if (len == bytes.length) bytes = Arrays.copyOf(bytes, bytes.length * 2);
            bytes[len++] = (byte) b;
        }

        void varint(long value) {
            while ((value & ~0x7FL) != 0) {
                u8((int) ((value & 0x7F) | 0x80));
                value >>>= 7;
            }
            u8((int) value);
        }

        void i32(int value) {
            varint(Integer.toUnsignedLong((value << 1) ^ (value >> 31)));
        }

        void addr(String ip, int port) {
            byte[] raw = parseIp(ip).getAddress();
            u8(raw.length == 4 ? 0 : 1);
            for (byte b : raw) u8(b);
            varint(port);
        }

        /** The finished frame under {@code msgid}. */
        byte[] frame(int msgid) {
            int body = len - HEADER;
            for (int i = 0; i < 4; i++) {
                bytes[i] = (byte) (msgid >>> (8 * i));
                bytes[4 + i] = (byte) (body >>> (8 * i));
            }
            return Arrays.copyOf(bytes, len);
        }
    }

    /** A strict reader over one body. */
    static final class Reader {
        private final byte[] body;
        private int at;
        private final int end;

        Reader(byte[] body, int from, int end) {
            this.body = body;
            this.at = from;
            this.end = end;
        }

        int u8() throws WireException {
            if (at >= end) throw new WireException("truncated");
            return body[at++] & 0xFF;
        }

        long varint(int bits) throws WireException {
            long value = 0;
            int shift = 0;
            while (true) {
                int b = u8();
                value |= (long) (b & 0x7F) << shift;
                shift += 7;
                if ((b & 0x80) == 0) break;
                if (shift >= bits + 7) throw new WireException("bad varint");
            }
            if (bits < 64 && (value >>> bits) != 0) throw new WireException("bad varint");
            return value;
        }

        int i32() throws WireException {
            int z = (int) varint(32);
            return (z >>> 1) ^ -(z & 1);
        }

        int tag(int limit) throws WireException {
            long value = varint(32);
            if (value >= limit) throw new WireException("bad value");
            return (int) value;
        }

        Host addr(int weight) throws WireException {
            int size = tag(2) == 0 ? 4 : 16;
            if (end - at < size) throw new WireException("truncated");
            byte[] raw = Arrays.copyOfRange(body, at, at + size);
            at += size;
            int port = (int) varint(16);
            try {
                return new Host(format(InetAddress.getByAddress(raw)), port, weight);
            } catch (UnknownHostException e) {
                throw new WireException("bad address");
            }
        }

        void end() throws WireException {
            if (at != end) throw new WireException("trailing bytes");
        }
    }

    /** The text of an address: dotted for IPv4, RFC 5952 for IPv6 as the Rust client writes it. */
    static String format(InetAddress address) {
        if (!(address instanceof Inet6Address)) return address.getHostAddress();
        byte[] raw = address.getAddress();
        int[] groups = new int[8];
        for (int i = 0; i < 8; i++) groups[i] = ((raw[2 * i] & 0xFF) << 8) | (raw[2 * i + 1] & 0xFF);
        int bestStart = -1;
        int bestLen = 1;
        for (int i = 0; i < 8; ) {
            int j = i;
            while (j < 8 && groups[j] == 0) j++;
            if (j - i > bestLen) {
                bestStart = i;
                bestLen = j - i;
            }
            i = j == i ? i + 1 : j;
        }
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 8; i++) {
            if (i == bestStart) {
                text.append("::");
                i += bestLen - 1;
                continue;
            }
            if (text.length() > 0 && text.charAt(text.length() - 1) != ':') text.append(':');
            text.append(Integer.toHexString(groups[i]));
        }
        return text.toString();
    }

    /** A numeric IP address; never a name lookup. */
    static InetAddress parseIp(String ip) {
        try {
            if (ip.contains(":")) return InetAddress.getByName(ip); // a literal with ':' is IPv6, never looked up
            String[] parts = ip.split("\\.", -1);
            if (parts.length == 4) {
                byte[] raw = new byte[4];
                for (int i = 0; i < 4; i++) {
                    if (!parts[i].matches("[0-9]{1,3}") || Integer.parseInt(parts[i]) > 255) throw new NumberFormatException();
                    raw[i] = (byte) Integer.parseInt(parts[i]);
                }
                return InetAddress.getByAddress(raw);
            }
        } catch (UnknownHostException | NumberFormatException e) {
            // fall through to the error below
        }
        throw new IllegalArgumentException("host ip `" + ip + "` is not an IP address");
    }

    static byte[] getHostRequest(int seq, int modid, int cmdid, Long key) {
        Writer w = new Writer();
        w.varint(Integer.toUnsignedLong(seq));
        w.i32(modid);
        w.i32(cmdid);
        if (key == null) {
            w.u8(0);
        } else {
            w.u8(1);
            w.varint(key);
        }
        return w.frame(GET_HOST_REQUEST);
    }

    static byte[] getRouteRequest(int seq, int modid, int cmdid) {
        Writer w = new Writer();
        w.varint(Integer.toUnsignedLong(seq));
        w.i32(modid);
        w.i32(cmdid);
        return w.frame(GET_ROUTE_REQUEST);
    }

    static byte[] report(int modid, int cmdid, Host host, Outcome outcome, long latencyUs) {
        Writer w = new Writer();
        w.i32(modid);
        w.i32(cmdid);
        w.addr(host.ip(), host.port());
        w.varint(outcome.ordinal());
        w.varint(latencyUs);
        return w.frame(REPORT);
    }

    /** One host's counts over a period, as in {@code HostStats}. */
    record HostStats(Host host, long succ, long err, long overload, boolean overloaded, long latencySumUs, long latencyMaxUs) {}

    /** A leasing client's summary ({@code caller} and {@code ts} 0). */
    static byte[] callStats(int modid, int cmdid, List<HostStats> entries) {
        Writer w = new Writer();
        w.u8(0);
        w.u8(0);
        w.varint(entries.size());
        for (HostStats e : entries) {
            w.i32(modid);
            w.i32(cmdid);
            w.addr(e.host().ip(), e.host().port());
            w.varint(e.succ());
            w.varint(e.err());
            w.varint(e.overload());
            w.u8(e.overloaded() ? 1 : 0);
            w.varint(e.latencySumUs());
            w.varint(e.latencyMaxUs());
        }
        return w.frame(CALL_STATS);
    }

    /** The msgid of a datagram whose length is right; its body is {@code HEADER..len}. */
    static int frameMsgid(byte[] datagram, int len) throws WireException {
        if (len < HEADER) throw new WireException("truncated");
        int msgid = 0;
        long body = 0;
        for (int i = 0; i < 4; i++) {
            msgid |= (datagram[i] & 0xFF) << (8 * i);
            body |= (long) (datagram[4 + i] & 0xFF) << (8 * i);
        }
        if (body > MAX_BODY) throw new WireException("too long");
        if (body != len - HEADER) throw new WireException("length mismatch");
        return msgid;
    }

    /** A decoded {@code GetHostResponse}. */
    record GetHostResponse(int seq, int modid, int cmdid, int code, Host host) {}

    static GetHostResponse parseGetHostResponse(byte[] datagram, int len) throws WireException {
        Reader r = new Reader(datagram, HEADER, len);
        int seq = (int) r.varint(32);
        int modid = r.i32();
        int cmdid = r.i32();
        int code = r.tag(4);
        Host host = r.tag(2) == 1 ? r.addr(0) : null;
        r.end();
        return new GetHostResponse(seq, modid, cmdid, code, host);
    }

    /** A decoded {@code RouteResponse}. */
    record RouteResponse(int seq, int modid, int cmdid, int code, long version, List<Host> hosts) {}

    static RouteResponse parseRouteResponse(byte[] datagram, int len) throws WireException {
        Reader r = new Reader(datagram, HEADER, len);
        int seq = (int) r.varint(32);
        int modid = r.i32();
        int cmdid = r.i32();
        int code = r.tag(4);
        long version = r.varint(64);
        long count = r.varint(32);
        List<Host> hosts = new ArrayList<>();
        for (long i = 0; i < count; i++) {
            Host host = r.addr(0);
            int weight = (int) r.varint(32);
            hosts.add(new Host(host.ip(), host.port(), weight));
        }
        r.end();
        return new RouteResponse(seq, modid, cmdid, code, version, hosts);
    }
}
