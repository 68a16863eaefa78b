import { describe, expect, it } from "vitest";
import { relayedResponseHeaders } from "./forward";

describe("relayedResponseHeaders", () => {
  it("keeps end-to-end headers (repeated ones too) and drops hop-by-hop ones", () => {
    expect(
      relayedResponseHeaders({
        "content-type": "text/plain",
        "content-encoding": "gzip",
        "set-cookie": ["a=1", "b=2"],
        connection: "keep-alive, x-hop",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        "x-hop": "1",
        "proxy-authenticate": "Basic",
        location: "https://elsewhere.test/",
      }),
    ).toEqual([
      "content-type",
      "text/plain",
      "content-encoding",
      "gzip",
      "set-cookie",
      "a=1",
      "set-cookie",
      "b=2",
      "location",
      "https://elsewhere.test/",
    ]);
  });
});
