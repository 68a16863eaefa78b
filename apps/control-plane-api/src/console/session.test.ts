import { createKeyRing, generateMasterKey } from "@keyway/crypto";
import { describe, expect, it } from "vitest";
import { type ConsoleSession, csrfMatches, openSession, sealSession } from "./session";

const ring = createKeyRing({ current: 1, keys: [{ version: 1, key: generateMasterKey() }] });
const now = new Date("2026-06-01T12:00:00Z");
const session: ConsoleSession = {
  token: "kw_org_example",
  csrf: "c".repeat(32),
  principal: "organization",
  label: "Acme",
  expiresAt: now.getTime() + 60_000,
};

describe("console session cookie", () => {
  it("opens what it sealed, and the sealed form does not show the token", () => {
    const sealed = sealSession(ring, session);
    expect(sealed).not.toContain("kw_org_example");
    expect(openSession(ring, sealed, now)).toEqual(session);
  });

  it("refuses a tampered, foreign or expired cookie", () => {
    const sealed = sealSession(ring, session);
    // A character well inside the ciphertext (the last one may carry only padding bits).
    const at = sealed.length - 10;
    const swapped = sealed[at] === "A" ? "B" : "A";
    expect(
      openSession(ring, `${sealed.slice(0, at)}${swapped}${sealed.slice(at + 1)}`, now),
    ).toBeUndefined();
    const other = createKeyRing({ current: 1, keys: [{ version: 1, key: generateMasterKey() }] });
    expect(openSession(other, sealed, now)).toBeUndefined();
    expect(openSession(ring, sealed, new Date(session.expiresAt))).toBeUndefined();
    expect(openSession(ring, "garbage", now)).toBeUndefined();
    expect(openSession(ring, undefined, now)).toBeUndefined();
  });

  it("matches CSRF tokens exactly", () => {
    expect(csrfMatches(session.csrf, session.csrf)).toBe(true);
    expect(csrfMatches(session.csrf, `${session.csrf}x`)).toBe(false);
    expect(csrfMatches(session.csrf, "")).toBe(false);
    expect(csrfMatches(session.csrf, undefined)).toBe(false);
  });
});
