import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "./config-error";
import { listenOn, PortInUseError } from "./service-process";

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    await new Promise((done) => server.close(done));
  }
});

function server(): Server {
  const created = createServer();
  servers.push(created);
  return created;
}

describe("listenOn", () => {
  it("names a port in use and the setting that chose it", async () => {
    const first = server();
    await listenOn(first, "127.0.0.1", 0, "api.port");
    const address = first.address();
    if (address === null || typeof address === "string") throw new Error("no TCP address");

    const error = await listenOn(server(), "127.0.0.1", address.port, "api.port").catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(PortInUseError);
    expect(error).toMatchObject({ code: "PORT_IN_USE", port: address.port, key: "api.port" });
    expect(String((error as Error).message)).toBe(`port ${address.port} (api.port) is in use`);
  });

  it("reports another unusable address as a config error naming the key", async () => {
    // 192.0.2.1 (TEST-NET-1) is never an address of this machine: nothing is sent, bind fails.
    const error = await listenOn(server(), "192.0.2.1", 0, "gateway.admin_port").catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect(String((error as Error).message)).toMatch(
      /^config error: gateway\.admin_port: listen EADDRNOTAVAIL/,
    );
  });
});
