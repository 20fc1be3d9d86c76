/** A host of a route: its IP in text, its port and its weight. */
package lars;

import java.net.InetSocketAddress;

/**
 * A host of a route.
 *
 * @param ip the IP address in text ({@code "10.0.0.1"}, {@code "2001:db8::1"})
 * @param port the port
 * @param weight its weight in the route; 0 when it came from {@code getHost}
 */
public record Host(String ip, int port, int weight) {
    /**
     * A host from {@code getHost}, whose weight is not known.
     *
     * @param ip the IP address in text
     * @param port the port
     */
    public Host(String ip, int port) {
        this(ip, port, 0);
    }

    /**
     * The address in text.
     *
     * @return {@code "10.0.0.1:80"} or {@code "[2001:db8::1]:80"}
     */
    public String address() {
        return ip.contains(":") ? "[" + ip + "]:" + port : ip + ":" + port;
    }

    /**
     * The address as a socket address (no name lookup: {@code ip} is numeric).
     *
     * @return the socket address
     */
    public InetSocketAddress socketAddress() {
        return new InetSocketAddress(Wire.parseIp(ip), port);
    }
}
