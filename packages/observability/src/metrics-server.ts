import { createServer, type Server, type ServerResponse } from "node:http";
import type { MetricsRegistry } from "./metrics";

/** Answers a scrape: the registry's exposition, or 500 when a collector failed. */
export async function sendMetrics(res: ServerResponse, metrics: MetricsRegistry): Promise<void> {
  let body: string;
  try {
    body = await metrics.render();
  } catch {
    res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
    res.end("metrics collection failed\n");
    return;
  }
  res.writeHead(200, {
    "content-type": metrics.contentType,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

/**
 * A listener for processes that serve no HTTP of their own (the worker): `GET /metrics`
 * (Prometheus text) and `GET /healthz` (the process answers). The caller listens.
 */
export function createMetricsServer(metrics: MetricsRegistry): Server {
  return createServer((req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/metrics") {
      void sendMetrics(res, metrics);
      return;
    }
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end('{"error":{"code":"not_found","message":"no such endpoint"}}');
  });
}
