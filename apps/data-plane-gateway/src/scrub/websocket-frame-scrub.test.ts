import { describe, expect, it } from "vitest";
import { encodeFrame, OPCODE_TEXT } from "../testing/websocket-peer";
import { SecretScrubber } from "./secret-scrubber";
import { WebSocketFrameScrub } from "./websocket-frame-scrub";

const SECRET = "sk-ws-0123456789";
const MASKED = "*".repeat(SECRET.length);

function frame(text: string): Buffer {
  return encodeFrame(OPCODE_TEXT, Buffer.from(text), false);
}

/** Writes `chunks` and returns what came out after each, and the tally. */
async function run(chunks: readonly Buffer[]) {
  const tally = { scrubbedHeaders: 0, scrubbedBody: 0 };
  const scrub = new WebSocketFrameScrub(new SecretScrubber([SECRET]), tally);
  const outs: Buffer[] = [];
  scrub.on("data", (chunk: Buffer) => outs.push(chunk));
  const after: Buffer[] = [];
  for (const chunk of chunks) {
    scrub.write(chunk);
    await new Promise(setImmediate);
    after.push(Buffer.concat(outs.splice(0)));
  }
  scrub.end();
  await new Promise(setImmediate);
  return { after, rest: Buffer.concat(outs), tally };
}

describe("WebSocketFrameScrub", () => {
  it("masks the secret in payloads, split at every byte of a stream of frames", async () => {
    const stream = Buffer.concat([
      frame(`you sent ${SECRET}`),
      frame("x".repeat(300) + SECRET),
      frame(""),
      frame(`${SECRET}!`),
    ]);
    const expected = Buffer.concat([
      frame(`you sent ${MASKED}`),
      frame("x".repeat(300) + MASKED),
      frame(""),
      frame(`${MASKED}!`),
    ]);
    for (let a = 0; a <= stream.length; a++) {
      const result = await run([stream.subarray(0, a), stream.subarray(a)]);
      expect(Buffer.concat([...result.after, result.rest]).equals(expected)).toBe(true);
      expect(result.tally.scrubbedBody).toBe(3);
    }
  });

  it("delivers a frame ending in the secret's first bytes whole, without waiting for the next", async () => {
    const result = await run([frame("yes sk"), frame(`then ${SECRET}`)]);
    expect(result.after[0]?.equals(frame("yes sk"))).toBe(true);
    expect(result.after[1]?.equals(frame(`then ${MASKED}`))).toBe(true);
  });

  it("leaves a secret split over two frames alone (documented)", async () => {
    const two = Buffer.concat([frame(SECRET.slice(0, 5)), frame(SECRET.slice(5))]);
    const result = await run([two]);
    expect(result.after[0]?.equals(two)).toBe(true);
  });
});
