import { createServer, type Server, type ServerResponse } from "node:http";
import { type MetricsRegistry, sendMetrics } from "@keyway/observability";

/**
 * The admin port (SPEC §7 "Observability"): `/healthz` (the process answers), `/readyz` (it can
 * serve: session keys loaded, and the invalidation feed connected or lost less than the liveness
 * outage grace ago; see `gateway.ts`) and `/metrics` (Prometheus text).
 */
export interface AdminServerOptions {
  metrics: MetricsRegistry;
  readiness(): { ready: boolean; checks: Record<string, boolean> };
}

export function createAdminServer(options: AdminServerOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      json(res, 405, { error: { code: "method_not_allowed", message: "use GET" } });
      return;
    }
    switch (path) {
      case "/healthz":
        json(res, 200, { ok: true });
        return;
      case "/readyz": {
        const { ready, checks } = options.readiness();
        json(res, ready ? 200 : 503, { ready, checks });
        return;
      }
      case "/metrics":
        void sendMetrics(res, options.metrics);
        return;
      default:
        json(res, 404, { error: { code: "not_found", message: "no such admin endpoint" } });
    }
  });
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}
