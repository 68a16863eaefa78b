/**
 * Group commit for the gateway's batched control-plane requests (credential resolutions,
 * session liveness): at most `max` requests under way at once, and what is asked for while
 * every slot is taken waits and goes in one request when a slot frees — so in a storm of first
 * requests, arrivals spread over many event-loop turns share a few requests instead of one or
 * two each (`pnpm bench:storm`, docs/benchmarks.md). A lone request never waits.
 *
 * A request holds its slot until it is answered or `holdMs` has passed, whichever is first: one
 * waiting on something slow (a provider's token endpoint, a struggling control plane) stops
 * holding back what queued behind it.
 */
export interface RequestSlots {
  /** Whether a request may be sent now. */
  readonly free: boolean;
  /** Takes a slot; call the result when the request is answered. */
  take(): () => void;
}

export function createRequestSlots(options: {
  max: number;
  holdMs: number;
  /** Called when a slot frees, to send what waited. */
  onFree(): void;
}): RequestSlots {
  let inUse = 0;
  return {
    get free() {
      return inUse < options.max;
    },
    take() {
      inUse++;
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        clearTimeout(timer);
        inUse--;
        options.onFree();
      };
      const timer = setTimeout(release, options.holdMs);
      timer.unref();
      return release;
    },
  };
}
