/** How a call to a host went, as reported to the agent. */
package lars;

/** How a call to a host went. */
public enum Outcome {
    /** The call succeeded. */
    OK,
    /** The call failed. */
    FAIL,
    /** The host refused the call because it is overloaded. */
    OVERLOAD
}
