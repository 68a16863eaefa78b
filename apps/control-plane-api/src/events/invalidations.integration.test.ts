import {
  createTestDatabase,
  startTcpProxy,
  type TcpProxy,
  type TestDatabase,
} from "@keyway/test-harness";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInvalidationFeed } from "./invalidations";

let database: TestDatabase;
let proxy: TcpProxy;
let client: postgres.Sql;

beforeAll(async () => {
  database = await createTestDatabase("invalidations");
  const url = new URL(database.tcpUrl);
  proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
  url.port = String(proxy.port);
  client = postgres(url.toString(), { max: 1, onnotice: () => {} });
});

afterAll(async () => {
  await client?.end({ timeout: 1 });
  await proxy?.close();
  await database?.drop();
});

describe("the invalidation feed's close", () => {
  // Ctrl+C under `pnpm start` reaches PostgreSQL as well as the API: the server's fast shutdown can
  // reset the LISTEN connection while the API's close is sending its UNLISTEN (seen as "error while
  // stopping: Error: read ECONNRESET … at Object.unlisten" when stopping under load).
  it("resolves when the connection is reset under its UNLISTEN", async () => {
    const feed = await startInvalidationFeed(client);
    proxy.freeze();
    const closing = feed.close();
    await proxy.refuse();
    await expect(closing).resolves.toBeUndefined();
  });
});
