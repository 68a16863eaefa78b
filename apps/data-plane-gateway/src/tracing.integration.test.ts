import { InMemorySpanExporter, type ReadableSpan } from "@keyway/observability";
import {
  createTestCa,
  type RunningServer,
  startHttpServer,
  type TestCa,
} from "@keyway/test-harness";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "./testing/control-plane-stack";
import { curl, recordingUpstream, testPlan, testRoute } from "./testing/fixtures";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";

/**
 * W3C trace context from the sandbox's request through the gateway into the control plane's
 * credential resolution and its audit entry, and the spans each side exports when traces are on.
 */

const SANDBOX_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SANDBOX_SPAN = "00f067aa0ba902b7";

let gatewayCa: TestCa;
let upstream: RunningServer;
let cp: TestControlPlane | undefined;
let gw: TestGateway | undefined;

beforeAll(async () => {
  gatewayCa = await createTestCa();
  upstream = await startHttpServer(recordingUpstream([]));
  return () => upstream.close();
});

afterEach(async () => {
  await gw?.close();
  await cp?.close();
  gw = undefined;
  cp = undefined;
});

async function start(exporter?: InMemorySpanExporter): Promise<{ token: string }> {
  cp = await startTestControlPlane(exporter ? { spanExporter: exporter } : {});
  const digest = await cp.addPlan(
    testPlan([testRoute("r_a", "a.example.test", upstream.url, { type: "header", name: "x-key" })]),
  );
  await cp.setCredential("r_a", { value: "secret-a-1" });
  gw = await startTestGateway({
    controlPlane: cp,
    gatewayCa,
    ...(exporter ? { spanExporter: exporter } : {}),
  });
  return { token: await cp.issueToken({ sessionId: "sess_trace", planDigest: digest }) };
}

function sandboxRequest(token: string, headers: string[] = []) {
  const args = ["--proxy", gw!.proxyUrlFor(token)];
  for (const header of headers) args.push("-H", header);
  return curl([...args, "http://a.example.test/"]);
}

const serviceOf = (span: ReadableSpan) => span.resource.attributes["service.name"];
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

describe("trace context", () => {
  it("exports one trace spanning gateway → control plane → database for a sandbox request", async () => {
    const exporter = new InMemorySpanExporter();
    const { token } = await start(exporter);
    const response = await sandboxRequest(token, [
      `traceparent: 00-${SANDBOX_TRACE}-${SANDBOX_SPAN}-01`,
    ]);
    expect(response.status).toBe(200);

    const spans = exporter
      .getFinishedSpans()
      .filter((span) => span.spanContext().traceId === SANDBOX_TRACE);
    const gateway = spans.find((span) => serviceOf(span) === "data-plane-gateway");
    expect(gateway).toMatchObject({ name: "gateway resolve credential" });
    // The gateway's span is a child of the sandbox's.
    expect(parentOf(gateway!)).toBe(SANDBOX_SPAN);

    const server = spans.find(
      (span) =>
        serviceOf(span) === "control-plane-api" && parentOf(span) === gateway!.spanContext().spanId,
    );
    expect(server).toMatchObject({ name: "POST /internal/v1/credentials/resolve" });
    expect(server!.attributes["http.response.status_code"]).toBe(200);

    const database = spans.filter(
      (span) => parentOf(span) === server!.spanContext().spanId && span.name.startsWith("db "),
    );
    expect(database.map((span) => span.name).sort()).toEqual([
      "db audit append",
      // Session, route, connection, target, binding and credential: one statement.
      "db select resolution",
    ]);
    for (const span of database) {
      expect(span.attributes["db.system.name"]).toBe("postgresql");
      expect(serviceOf(span)).toBe("control-plane-api");
    }
    // Nothing secret in any span.
    expect(JSON.stringify(spans.map((span) => [span.name, span.attributes]))).not.toContain(
      "secret-a-1",
    );

    // The resolution's audit entry carries the sandbox's trace id.
    expect(await cp!.resolutionTraceIds("r_a")).toEqual([SANDBOX_TRACE]);
    // And the control plane counted it.
    const metrics = await (await fetch(`${cp!.url}/metrics`)).text();
    expect(metrics).toContain(
      'keyway_credential_resolutions_total{outcome="resolved",reason="stored-secret"} 1',
    );
    expect(metrics).toContain(
      'keyway_audit_append_duration_seconds_count{action="credential.resolved"} 1',
    );
  });

  it("carries the sandbox's trace id into the audit entry with traces off", async () => {
    const { token } = await start();
    const response = await sandboxRequest(token, [
      `traceparent: 00-${SANDBOX_TRACE}-${SANDBOX_SPAN}-01`,
    ]);
    expect(response.status).toBe(200);
    expect(await cp!.resolutionTraceIds("r_a")).toEqual([SANDBOX_TRACE]);
    const line = gw!.logger.lines.map((text) => JSON.parse(text)).find((l) => l.msg === "request");
    expect(line.traceId).toBe(SANDBOX_TRACE);
  });

  it("gives a request without traceparent one trace id in the access log, the spans and the audit entry", async () => {
    const exporter = new InMemorySpanExporter();
    const { token } = await start(exporter);
    expect((await sandboxRequest(token)).status).toBe(200);
    const line = gw!.logger.lines.map((text) => JSON.parse(text)).find((l) => l.msg === "request");
    const traceId: string = line.traceId;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(await cp!.resolutionTraceIds("r_a")).toEqual([traceId]);
    const services = new Set(
      exporter
        .getFinishedSpans()
        .filter((span) => span.spanContext().traceId === traceId)
        .map(serviceOf),
    );
    expect(services).toEqual(new Set(["data-plane-gateway", "control-plane-api"]));
  });

  it("ignores a malformed traceparent", async () => {
    const { token } = await start();
    const response = await sandboxRequest(token, [
      `traceparent: 00-${"0".repeat(32)}-${SANDBOX_SPAN}-01`,
    ]);
    expect(response.status).toBe(200);
    const [traceId] = await cp!.resolutionTraceIds("r_a");
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(traceId).not.toBe("0".repeat(32));
  });
});
