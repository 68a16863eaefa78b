import { createTestCa } from "@keyway/test-harness";
import { describe, expect, it } from "vitest";
import { createLeafContexts } from "./leaf-certificates";

describe("createLeafContexts", () => {
  it("answers a host no certificate can name with 400 bad_request, not an internal error", async () => {
    const ca = await createTestCa();
    const contexts = createLeafContexts({ issue: ca.issueLeaf, clock: { now: () => new Date() } });

    for (const hostname of ["-odd-.example.test", `${"a".repeat(64)}.example.test`, "a..test"]) {
      await expect(
        Promise.resolve(contexts.secureContextFor(hostname)),
        hostname,
      ).rejects.toMatchObject({ name: "GatewayError", code: "bad_request", status: 400 });
    }
    // The same cache then serves hosts it can name.
    await expect(
      Promise.resolve(contexts.secureContextFor("api.example.test")),
    ).resolves.toBeTruthy();
  });
});
