import type { Server } from "node:http";
import { loadConfig } from "@keyway/config";
import { createGateway } from "./gateway";
import { gatewayDepsFromConfig } from "./gateway-from-config";

const config = await loadConfig();
const deps = await gatewayDepsFromConfig(config);
const gateway = createGateway(deps);
const listen = (server: Server, host: string, port: number) =>
  new Promise<void>((resolve) => server.listen(port, host, resolve));
await listen(gateway.proxyServer, config.gateway.host, config.gateway.port);
await listen(gateway.adminServer, config.gateway.admin_host, config.gateway.admin_port);
gateway.start();
deps.logger.info("gateway listening", {
  proxy: gateway.proxyServer.address(),
  admin: gateway.adminServer.address(),
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, async () => {
    await gateway.close();
    await deps.controlPlane.close();
    process.exit(0);
  });
}
