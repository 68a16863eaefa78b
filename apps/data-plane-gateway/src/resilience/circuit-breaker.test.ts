import type { EgressRoute } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { GatewayError } from "../errors";
import { testClock } from "../testing/fixtures";
import {
  type CircuitBreakerSettings,
  type CircuitState,
  createCircuitBreakers,
} from "./circuit-breaker";

function route(id: string, baseUrl: string): EgressRoute {
  return {
    id,
    bindingId: `bind_${id}`,
    match: { hosts: ["api.example.test"] },
    upstream: { baseUrl },
    auth: { type: "none" },
    credential: { connectionId: `conn_${id}`, secretType: "api_key" },
  };
}

const SETTINGS: CircuitBreakerSettings = {
  failureThreshold: 3,
  windowMs: 10_000,
  coolDownMs: 5_000,
};

function setup(settings = SETTINGS) {
  const clock = testClock();
  const changes: string[] = [];
  const breakers = createCircuitBreakers({
    settings,
    clock,
    onStateChange: (origin: string, state: CircuitState) => changes.push(`${origin} ${state}`),
  });
  const circuit = breakers.circuitFor(route("r1", "https://api.example.test/v1"));
  return { clock, changes, breakers, circuit };
}

function refusal(admit: () => boolean): GatewayError | undefined {
  try {
    admit();
    return undefined;
  } catch (error) {
    if (error instanceof GatewayError) return error;
    throw error;
  }
}

describe("circuit breaker", () => {
  it("stays closed below the threshold and lets every request through", () => {
    const { circuit } = setup();
    circuit.upstreamFailed();
    circuit.upstreamFailed();
    expect(circuit.state).toBe("closed");
    expect(circuit.admit()).toBe(false);
  });

  it("opens after consecutive failures and refuses with 503 until the cool-down ends", () => {
    const { circuit, clock, changes } = setup();
    circuit.upstreamFailed();
    circuit.upstreamResponded(503);
    clock.at(1_000);
    circuit.upstreamFailed();
    expect(circuit.state).toBe("open");
    expect(changes).toEqual(["https://api.example.test open"]);
    clock.at(2_000);
    const error = refusal(() => circuit.admit());
    expect(error?.code).toBe("upstream_circuit_open");
    expect(error?.status).toBe(503);
    expect(error?.retryAfterSeconds).toBe(4);
  });

  it("counts only consecutive failures: an answer resets the count", () => {
    const { circuit } = setup();
    circuit.upstreamFailed();
    circuit.upstreamFailed();
    circuit.upstreamResponded(404);
    circuit.upstreamFailed();
    circuit.upstreamFailed();
    expect(circuit.state).toBe("closed");
  });

  it("starts a new count when failures are further apart than the window", () => {
    const { circuit, clock } = setup();
    circuit.upstreamFailed();
    clock.at(5_000);
    circuit.upstreamFailed();
    clock.at(15_001);
    circuit.upstreamFailed();
    expect(circuit.state).toBe("closed");
    clock.at(16_000);
    circuit.upstreamFailed();
    expect(circuit.state).toBe("closed");
    circuit.upstreamFailed();
    expect(circuit.state).toBe("open");
  });

  it("lets one probe through after the cool-down and closes when it is answered", () => {
    const { circuit, clock, changes } = setup();
    for (let i = 0; i < 3; i++) circuit.upstreamFailed();
    clock.at(5_000);
    expect(circuit.admit()).toBe(true);
    expect(circuit.state).toBe("half_open");
    // Others wait while the probe is in flight.
    expect(refusal(() => circuit.admit())?.code).toBe("upstream_circuit_open");
    circuit.upstreamResponded(200);
    circuit.releaseProbe();
    expect(circuit.state).toBe("closed");
    expect(circuit.admit()).toBe(false);
    expect(changes.map((change) => change.split(" ")[1])).toEqual(["open", "half_open", "closed"]);
  });

  it("reopens for a new cool-down when the probe fails", () => {
    const { circuit, clock } = setup();
    for (let i = 0; i < 3; i++) circuit.upstreamFailed();
    clock.at(5_000);
    expect(circuit.admit()).toBe(true);
    circuit.upstreamResponded(502);
    circuit.releaseProbe();
    expect(circuit.state).toBe("open");
    clock.at(9_999);
    expect(refusal(() => circuit.admit())?.retryAfterSeconds).toBe(1);
    clock.at(10_000);
    expect(circuit.admit()).toBe(true);
  });

  it("lets another request probe when the probe ended without a verdict", () => {
    const { circuit, clock } = setup();
    for (let i = 0; i < 3; i++) circuit.upstreamFailed();
    clock.at(5_000);
    expect(circuit.admit()).toBe(true);
    circuit.releaseProbe(); // e.g. the client went away before the upstream answered
    expect(circuit.admit()).toBe(true);
  });

  it("closes at once when the upstream is known to work again, probe or not", () => {
    const { circuit, clock, changes } = setup();
    for (let i = 0; i < 3; i++) circuit.upstreamFailed();
    clock.at(1_000);
    circuit.recovered();
    expect(circuit.state).toBe("closed");
    expect(circuit.admit()).toBe(false);
    expect(changes).toEqual(["https://api.example.test open", "https://api.example.test closed"]);
    // The count starts again from zero.
    circuit.upstreamFailed();
    circuit.upstreamFailed();
    expect(circuit.state).toBe("closed");
  });

  it("keeps one circuit per upstream origin", () => {
    const { breakers, circuit } = setup();
    const sameOrigin = breakers.circuitFor(route("r2", "https://api.example.test/v2"));
    const other = breakers.circuitFor(route("r3", "https://other.example.test"));
    expect(sameOrigin).toBe(circuit);
    expect(other).not.toBe(circuit);
    for (let i = 0; i < 3; i++) circuit.upstreamFailed();
    expect(other.state).toBe("closed");
  });

  it("rejects a threshold below one", () => {
    expect(() =>
      createCircuitBreakers({
        settings: { ...SETTINGS, failureThreshold: 0 },
        clock: testClock(),
      }),
    ).toThrow(RangeError);
  });
});
