/** Every host of a route and the store's version of them. */
package lars;

import java.util.List;

/**
 * Every host of a route.
 *
 * @param version the store's version of these hosts
 * @param hosts the hosts, with their weights
 */
public record Route(long version, List<Host> hosts) {
    /**
     * Copies {@code hosts}: a route is immutable.
     *
     * @param version the store's version of these hosts
     * @param hosts the hosts, with their weights
     */
    public Route {
        hosts = List.copyOf(hosts);
    }
}
