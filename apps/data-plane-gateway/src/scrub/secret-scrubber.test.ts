import { describe, expect, it } from "vitest";
import { heldBackFrom, type ScrubTally, SecretScrubber } from "./secret-scrubber";

const SECRET = "sk-live-0123456789abcdef";
const MASKED = "*".repeat(SECRET.length);

function run(scrubber: SecretScrubber, chunks: readonly string[]) {
  const counts = tally();
  const scrub = scrubber.body(counts);
  const outs = chunks.map((chunk) => scrub.push(Buffer.from(chunk)).toString());
  const tail = scrub.end().toString();
  return { outs, tail, text: outs.join("") + tail, replaced: counts.scrubbedBody };
}

function tally(): ScrubTally {
  return { scrubbedHeaders: 0, scrubbedBody: 0 };
}

describe("BodyScrub", () => {
  const scrubber = new SecretScrubber([SECRET]);
  const body = `{"headers":{"authorization":"Bearer ${SECRET}"},"again":"${SECRET}"}`;
  const expected = body.replaceAll(SECRET, MASKED);

  it("masks a secret split at every possible boundary, in two and three chunks", () => {
    for (let a = 0; a <= body.length; a++) {
      expect(run(scrubber, [body.slice(0, a), body.slice(a)]).text).toBe(expected);
      for (let b = a; b <= body.length; b += 7) {
        const result = run(scrubber, [body.slice(0, a), body.slice(a, b), body.slice(b)]);
        expect(result.text).toBe(expected);
        expect(result.replaced).toBe(2);
      }
    }
  });

  it("returns a chunk without any pattern as the same buffer, holding nothing", () => {
    const counts = tally();
    const scrub = scrubber.body(counts);
    const chunk = Buffer.from('data: {"delta":"hello"}\n\n');
    expect(scrub.push(chunk)).toBe(chunk);
    expect(scrub.end().length).toBe(0);
    expect(counts.scrubbedBody).toBe(0);
  });

  it("never writes into the chunk it was given", () => {
    const chunk = Buffer.from(`x${SECRET}y`);
    const out = scrubber.body(tally()).push(chunk);
    expect(out.toString()).toBe(`x${MASKED}y`);
    expect(chunk.toString()).toBe(`x${SECRET}y`);
  });

  it("holds back only a tail that could begin the secret, and sends it on with the next chunk", () => {
    const result = run(scrubber, ["hello sk-li", "ve-0123456789abcdef!"]);
    expect(result.outs).toEqual(["hello ", `${MASKED}!`]);
    expect(result.replaced).toBe(1);
    // Not the secret after all: the held bytes go out unchanged with the next chunk.
    expect(run(scrubber, ["hello sk-li", "mit"]).outs).toEqual(["hello ", "sk-limit"]);
  });

  it("flushes a held tail at the end", () => {
    const result = run(scrubber, ["the end: sk-live-01"]);
    expect(result.outs).toEqual(["the end: "]);
    expect(result.tail).toBe("sk-live-01");
  });

  it("passes empty chunks and secrets spread one byte per chunk", () => {
    const result = run(scrubber, ["", ...`<${SECRET}>`.split(""), ""]);
    expect(result.text).toBe(`<${MASKED}>`);
    expect(result.replaced).toBe(1);
  });

  it("masks every pattern, repeated, overlapping and nested occurrences included", () => {
    const forms = new SecretScrubber(["abab", "ba", "xyz"]);
    // abab at 0 and 2, ba at 1, 3 and 5; xyz at 8.
    const result = run(forms, ["ababab", "aqxyz-"]);
    expect(result.text).toBe("*******q***-");
    expect(result.replaced).toBe(6);
  });

  it("masks the part of a held tail an earlier occurrence covered, even when nothing else matches", () => {
    // "ab" ends in "b", which is also the start of "bc": held, then not completed.
    const result = run(new SecretScrubber(["ab", "bc"]), ["ab", "a"]);
    expect(result.text).toBe("**a");
    expect(result.replaced).toBe(1);
  });

  it("never holds back an SSE event's end (secrets hold no control characters)", () => {
    const result = run(scrubber, [`data: ${SECRET.slice(0, 5)}\n\n`, `data: ${SECRET}\n\n`]);
    expect(result.outs).toEqual([`data: ${SECRET.slice(0, 5)}\n\n`, `data: ${MASKED}\n\n`]);
  });

  it("finds where the held tail starts", () => {
    const patterns = [Buffer.from("secret")];
    expect(heldBackFrom(Buffer.from("a secre"), patterns)).toBe(2);
    expect(heldBackFrom(Buffer.from("a sec"), patterns)).toBe(2);
    expect(heldBackFrom(Buffer.from("a secret"), patterns)).toBe(8);
    expect(heldBackFrom(Buffer.from("s"), patterns)).toBe(0);
    expect(heldBackFrom(Buffer.from(""), patterns)).toBe(0);
  });

  it("ignores empty and repeated forms", () => {
    expect(new SecretScrubber(["", SECRET, SECRET]).patterns).toHaveLength(1);
  });
});

describe("SecretScrubber headers", () => {
  const scrubber = new SecretScrubber([SECRET, Buffer.from(`u:${SECRET}`).toString("base64")]);

  it("returns the same object when no value holds a pattern", () => {
    const headers = { "content-type": "application/json", "set-cookie": ["a=1", "b=2"] };
    const counts = tally();
    expect(scrubber.scrubHeaders(headers, counts)).toBe(headers);
    expect(counts.scrubbedHeaders).toBe(0);
  });

  it("masks values (single and repeated headers) in a copy, keeping their length", () => {
    const basic = Buffer.from(`u:${SECRET}`).toString("base64");
    const headers = {
      "x-echo-authorization": `Bearer ${SECRET}`,
      "set-cookie": ["a=1", `echo=${basic}; Path=/`],
      location: `https://x.test/?key=${SECRET}&again=${SECRET}`,
      "content-length": "12",
    };
    const counts = tally();
    const out = scrubber.scrubHeaders(headers, counts);
    expect(out).not.toBe(headers);
    expect(out["x-echo-authorization"]).toBe(`Bearer ${MASKED}`);
    expect(out["set-cookie"]).toEqual(["a=1", `echo=${"*".repeat(basic.length)}; Path=/`]);
    expect(out.location).toBe(`https://x.test/?key=${MASKED}&again=${MASKED}`);
    expect(out["content-length"]).toBe("12");
    expect(headers["x-echo-authorization"]).toBe(`Bearer ${SECRET}`);
    expect(counts.scrubbedHeaders).toBe(4);
  });

  it("masks a secret with non-ASCII bytes as it appears in a latin1 header value", () => {
    const secret = "clé-secrète-42";
    const latin1 = Buffer.from(secret, "utf8").toString("latin1");
    const out = new SecretScrubber([secret]).scrubHeaders({ "x-echo": `v=${latin1}` }, tally());
    expect(out["x-echo"]).toBe(`v=${"*".repeat(Buffer.byteLength(secret))}`);
  });

  it("masks raw header values", () => {
    const raw = ["X-Echo", SECRET, "Content-Type", "text/plain"];
    const counts = tally();
    expect(scrubber.scrubRawHeaders(raw, counts)).toEqual([
      "X-Echo",
      MASKED,
      "Content-Type",
      "text/plain",
    ]);
    expect(raw[1]).toBe(SECRET);
    expect(counts.scrubbedHeaders).toBe(1);
  });
});
