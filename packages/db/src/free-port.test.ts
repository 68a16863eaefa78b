import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { getFreePort } from "./free-port";

describe("getFreePort", () => {
  it("returns a port that can then be bound", async () => {
    const port = await getFreePort();
    const server = createServer();

    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });

    expect(port).toBeGreaterThan(0);
    await new Promise((resolve) => server.close(resolve));
  });
});
