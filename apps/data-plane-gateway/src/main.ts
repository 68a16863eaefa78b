import { setFlagsFromString } from "node:v8";
import { listenOn, loadConfig, runServiceProcess, type StoppableService } from "@keyway/config";
import { createGateway } from "./gateway";
import { gatewayDepsFromConfig } from "./gateway-from-config";

/**
 * Entry for `data-plane-gateway`: loads keyway.toml (+ KEYWAY_* overrides), listens on the proxy
 * and admin ports and follows the control plane. A start-up failure is one line on stderr (the
 * config key or the address at fault) and exit code 1.
 */
// Under load, Node's HTTP server and undici promote ~150 KB of in-flight request objects to the
// old generation per young-generation GC (a plain Node forwarder does the same). V8's default
// growth lets old space reach ~3.5× its live size (20 → 76 MB) before a full GC; growing by 50 %
// instead runs a full GC every ~2 s at 20k req/s (~15 ms each, <1 % CPU) and keeps the process
// under SPEC §11's 150 MB. Read by V8 at every full GC, so setting it here takes effect.
// Measurements: docs/benchmarks.md (gateway, RSS).
setFlagsFromString("--heap-growing-percent=50");

async function start(): Promise<StoppableService> {
  const config = await loadConfig();
  const deps = await gatewayDepsFromConfig(config);
  const gateway = createGateway(deps);
  const close = async () => {
    await gateway.close();
    await deps.controlPlane.close();
    await deps.tracing.shutdown();
  };
  try {
    await listenOn(gateway.proxyServer, config.gateway.host, config.gateway.port, "gateway.port");
    await listenOn(
      gateway.adminServer,
      config.gateway.admin_host,
      config.gateway.admin_port,
      "gateway.admin_port",
    );
  } catch (error) {
    await close();
    throw error;
  }
  gateway.start();
  deps.logger.info("gateway listening", {
    proxy: gateway.proxyServer.address(),
    admin: gateway.adminServer.address(),
  });
  return { close };
}

await runServiceProcess("data-plane-gateway", start);
