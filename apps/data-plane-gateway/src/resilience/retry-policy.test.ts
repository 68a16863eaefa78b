import { describe, expect, it } from "vitest";
import { isRetryableConnectionError, retriesAllowed } from "./retry-policy";

function errorWithCode(code: string): Error {
  return Object.assign(new Error(code), { code });
}

describe("retry policy", () => {
  it("allows retries for idempotent methods without a body", () => {
    for (const method of ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]) {
      expect(retriesAllowed(method, false, 2)).toBe(2);
    }
  });

  it("never retries POST or PATCH", () => {
    expect(retriesAllowed("POST", false, 2)).toBe(0);
    expect(retriesAllowed("PATCH", false, 2)).toBe(0);
  });

  it("never retries a request with a body, whatever its method", () => {
    expect(retriesAllowed("PUT", true, 2)).toBe(0);
    expect(retriesAllowed("DELETE", true, 2)).toBe(0);
  });

  it("honours a configured count of zero", () => {
    expect(retriesAllowed("GET", false, 0)).toBe(0);
  });

  it("retries connection errors only", () => {
    for (const code of ["ECONNREFUSED", "ECONNRESET", "EPIPE", "UND_ERR_SOCKET"]) {
      expect(isRetryableConnectionError(errorWithCode(code))).toBe(true);
    }
    for (const code of [
      "UND_ERR_CONNECT_TIMEOUT",
      "UND_ERR_HEADERS_TIMEOUT",
      "UND_ERR_BODY_TIMEOUT",
      "UND_ERR_INVALID_ARG",
      "ENOTFOUND",
    ]) {
      expect(isRetryableConnectionError(errorWithCode(code))).toBe(false);
    }
    expect(isRetryableConnectionError(new Error("no code"))).toBe(false);
  });
});
