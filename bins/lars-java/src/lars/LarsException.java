/** A failed lars call, with the status code liblarsclient would return. */
package lars;

/**
 * A failed call. {@link #status()} says what kind; the message says why. Bad arguments are
 * {@link IllegalArgumentException}s instead, as Java callers expect.
 */
public class LarsException extends Exception {
    private static final long serialVersionUID = 1L;

    /** The kinds of failure; the codes are liblarsclient's {@code LARS_E*} (1-3 are Lars's own). */
    public enum Status {
        /** Every host of the route is overloaded: back off or degrade. */
        OVERLOADED(1),
        /** The agent could not serve the request. */
        AGENT_ERROR(2),
        /** No such route, or the agent is still fetching it. */
        NO_ROUTE(3),
        /** No answer from the agent after every retry: is it running? */
        TIMEOUT(4),
        /** The agent answered something that does not decode. */
        MALFORMED(5),
        /** A socket error. */
        IO(6);

        /** The liblarsclient status code. */
        public final int code;

        Status(int code) {
            this.code = code;
        }
    }

    /** What kind of failure this is. */
    private final Status status;

    /**
     * A failure of kind {@code status}, saying why.
     *
     * @param status the kind
     * @param message why
     */
    public LarsException(Status status, String message) {
        super(message);
        this.status = status;
    }

    /**
     * A failure of kind {@code status} caused by {@code cause}.
     *
     * @param status the kind
     * @param message why
     * @param cause the exception behind it
     */
    public LarsException(Status status, String message, Throwable cause) {
        super(message, cause);
        this.status = status;
    }

    /**
     * What kind of failure this is.
     *
     * @return the kind
     */
    public Status status() {
        return status;
    }
}
