import type { Clock } from "@keyway/crypto";
import type { EgressRoute } from "@keyway/integrations-core";
import { GatewayError } from "../errors";
import { LruCache } from "../lru-cache";
import type { UpstreamObserver } from "../pipeline/forward";

/**
 * Per-upstream circuit breaker (SPEC §7 "Resilience"), keyed by the route's upstream origin.
 * Failures are connection errors, timeouts before the response headers, and 502/503/504 answers.
 *
 *   closed ──(failureThreshold consecutive failures, each within windowMs of the previous)──▶ open
 *   open ──(coolDownMs elapsed; the next request becomes the probe)──▶ half_open
 *   half_open ──(probe answered)──▶ closed      half_open ──(probe failed)──▶ open
 *
 * While open, and while a half-open probe is in flight, requests get 503 `upstream_circuit_open`
 * without the upstream being contacted. Results are reported when the response headers arrive, so
 * a long streamed response does not hold the circuit half-open.
 */

export interface CircuitBreakerSettings {
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** A failure more than this long after the previous one starts a new count. */
  windowMs: number;
  /** How long an open circuit refuses before letting one probe through. */
  coolDownMs: number;
  /** Upstreams tracked; the least recently used is forgotten (as if closed). */
  maxUpstreams?: number;
}

export type CircuitState = "closed" | "open" | "half_open";

export type OnCircuitStateChange = (origin: string, state: CircuitState) => void;

/** 502/503/504 say the upstream (or what fronts it) is failing; other statuses are answers. */
function isFailureStatus(status: number): boolean {
  return status === 502 || status === 503 || status === 504;
}

export class Circuit implements UpstreamObserver {
  #state: CircuitState = "closed";
  #failures = 0;
  #lastFailureAtMs = 0;
  #openedAtMs = 0;
  #probing = false;

  constructor(
    readonly origin: string,
    private readonly settings: CircuitBreakerSettings,
    private readonly clock: Clock,
    private readonly onStateChange: OnCircuitStateChange,
  ) {}

  get state(): CircuitState {
    return this.#state;
  }

  /**
   * Lets a request through, or throws 503 `upstream_circuit_open`. Returns true when the request
   * is the half-open probe: its caller must `releaseProbe()` once it is done.
   */
  admit(): boolean {
    if (this.#state === "closed") return false;
    const nowMs = this.clock.now().getTime();
    if (this.#state === "open") {
      const waitMs = this.#openedAtMs + this.settings.coolDownMs - nowMs;
      if (waitMs > 0) throw circuitOpen(waitMs);
      this.#transition("half_open");
    }
    if (this.#probing) throw circuitOpen(this.settings.coolDownMs);
    this.#probing = true;
    return true;
  }

  /** The probe ended without a verdict (client gone, credential failure): let another try. */
  releaseProbe(): void {
    if (this.#state === "half_open") this.#probing = false;
  }

  upstreamResponded(status: number): void {
    if (isFailureStatus(status)) this.upstreamFailed();
    else this.upstreamSucceeded();
  }

  /** An answer that shows the upstream works (for callers that judge answers themselves). */
  upstreamSucceeded(): void {
    this.#failures = 0;
    // A late answer to a request admitted before the circuit opened is not the probe's.
    if (this.#state === "half_open") {
      this.#probing = false;
      this.#transition("closed");
    }
  }

  /** The upstream is known to work again (seen by other means): closes the circuit at once. */
  recovered(): void {
    this.#failures = 0;
    this.#probing = false;
    if (this.#state !== "closed") this.#transition("closed");
  }

  upstreamFailed(): void {
    const nowMs = this.clock.now().getTime();
    if (this.#state === "half_open") {
      this.#open(nowMs);
      return;
    }
    if (this.#state === "open") return;
    this.#failures =
      this.#failures > 0 && nowMs - this.#lastFailureAtMs <= this.settings.windowMs
        ? this.#failures + 1
        : 1;
    this.#lastFailureAtMs = nowMs;
    if (this.#failures >= this.settings.failureThreshold) this.#open(nowMs);
  }

  #open(nowMs: number): void {
    this.#probing = false;
    this.#failures = 0;
    this.#openedAtMs = nowMs;
    this.#transition("open");
  }

  #transition(state: CircuitState): void {
    this.#state = state;
    this.onStateChange(this.origin, state);
  }
}

function circuitOpen(waitMs: number): GatewayError {
  return new GatewayError(
    "upstream_circuit_open",
    "the upstream is failing; requests to it are paused",
    { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) },
  );
}

export interface CircuitBreakers {
  /** The circuit of a route's upstream origin. */
  circuitFor(route: EgressRoute): Circuit;
}

export function createCircuitBreakers(options: {
  settings: CircuitBreakerSettings;
  clock: Clock;
  onStateChange?: OnCircuitStateChange;
}): CircuitBreakers {
  const { settings, clock } = options;
  if (!Number.isInteger(settings.failureThreshold) || settings.failureThreshold < 1) {
    throw new RangeError("failureThreshold must be a positive integer");
  }
  const onStateChange = options.onStateChange ?? (() => {});
  const circuits = new LruCache<string, Circuit>(settings.maxUpstreams ?? 10_000);
  // Parsed once per `route.upstream` object, which lives with its cached plans (and is shared
  // by the plans of one shape).
  const origins = new WeakMap<EgressRoute["upstream"], string>();

  return {
    circuitFor(route) {
      let origin = origins.get(route.upstream);
      if (origin === undefined) {
        origin = new URL(route.upstream.baseUrl).origin;
        origins.set(route.upstream, origin);
      }
      let circuit = circuits.get(origin);
      if (circuit === undefined) {
        circuit = new Circuit(origin, settings, clock, onStateChange);
        circuits.set(origin, circuit);
      }
      return circuit;
    },
  };
}
