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

  it("drops every header the Connection value nominates, in any case and spacing", () => {
    expect(
      relayedResponseHeaders({
        connection: "Keep-Alive, X-One, x-two ,,close",
        "x-one": "1",
        "x-two": "2",
        "x-three": "3",
      }),
    ).toEqual(["x-three", "3"]);
  });

  it("relays everything but the Connection header itself when it names no header", () => {
    for (const connection of ["keep-alive", "close"]) {
      expect(relayedResponseHeaders({ connection, "content-length": "2", "x-one": "1" })).toEqual([
        "content-length",
        "2",
        "x-one",
        "1",
      ]);
    }
  });
});
