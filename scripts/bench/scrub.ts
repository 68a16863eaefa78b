/**
 * Credential-scrub benchmark: what masking an injected credential in responses costs the gateway
 * per response and per byte (`apps/data-plane-gateway/src/scrub/secret-scrubber.ts`), in one
 * process, against baselines measured in the same run. `pnpm bench:gateway` measures it in place.
 *
 *   pnpm bench:scrub [--json FILE]
 *
 * Cases: a small JSON response (the benchmark upstream's headers and 64-byte body, no secret in
 * it) — headers, body scrub and end; a 64 MiB body in 64 KiB chunks without the secret, and the
 * same with the secret every 4 KiB, against copying the same bytes (`Buffer.from`). The
 * credential is a Basic one: two patterns (the value and its base64 form), as on a git route.
 */

import { SecretScrubber } from "../../apps/data-plane-gateway/src/scrub/secret-scrubber";
import { jsonOutputPath, machineFacts, median, writeJson } from "./bench-lib";

const SECRET = "ghs_0123456789abcdefghijklmnopqrstuvwxyz";
const scrubber = new SecretScrubber([
  SECRET,
  Buffer.from(`x-access-token:${SECRET}`).toString("base64"),
]);
const ROUNDS = 7;
const SMALL_ITERATIONS = 500_000;
const BODY = Buffer.from(JSON.stringify({ id: "item_1", ok: true, name: "bench", count: 42 }));
const HEADERS = {
  "content-type": "application/json",
  "content-length": String(BODY.length),
  date: new Date().toUTCString(),
  connection: "keep-alive",
  "keep-alive": "timeout=120",
};
const CHUNK = 64 * 1024;
const LARGE_BYTES = 64 * 1024 * 1024;

function text(size: number, secretEvery: number | null): Buffer {
  const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod ";
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += words.length) out.write(words, at);
  if (secretEvery !== null) {
    for (let at = 100; at + SECRET.length < size; at += secretEvery) out.write(SECRET, at);
  }
  return out;
}

/** Nanoseconds per response of the scrub's per-response work on a small response. */
function smallResponseNs(scrub: boolean): number {
  const tally = { scrubbedHeaders: 0, scrubbedBody: 0 };
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < SMALL_ITERATIONS; i++) {
    if (scrub) {
      const headers = scrubber.scrubHeaders(HEADERS, tally);
      const body = scrubber.body(tally);
      sink += body.push(BODY).length + body.end().length + (headers === HEADERS ? 0 : 1);
    } else {
      sink += BODY.length;
    }
  }
  const ns = Number(process.hrtime.bigint() - start) / SMALL_ITERATIONS;
  if (sink === 0) throw new Error("unreachable");
  return ns;
}

/** MB/s through `work` over 64 KiB chunks of `body`. */
function throughput(body: Buffer, work: (chunk: Buffer) => number): number {
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let pass = 0; pass < LARGE_BYTES / body.length; pass++) {
    for (let at = 0; at < body.length; at += CHUNK) sink += work(body.subarray(at, at + CHUNK));
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (sink === 0) throw new Error("unreachable");
  return LARGE_BYTES / 1e6 / seconds;
}

function scrubbing(): (chunk: Buffer) => number {
  const body = scrubber.body({ scrubbedHeaders: 0, scrubbedBody: 0 });
  return (chunk) => body.push(chunk).length;
}

const clean = text(4 * 1024 * 1024, null);
const dirty = text(4 * 1024 * 1024, 4096);
const rounds = {
  smallBaselineNs: [] as number[],
  smallScrubNs: [] as number[],
  copyMBs: [] as number[],
  cleanMBs: [] as number[],
  dirtyMBs: [] as number[],
};
for (let round = 0; round < ROUNDS + 1; round++) {
  const figures = [
    smallResponseNs(false),
    smallResponseNs(true),
    throughput(clean, (chunk) => Buffer.from(chunk).length),
    throughput(clean, scrubbing()),
    throughput(dirty, scrubbing()),
  ];
  if (round === 0) continue; // warm-up
  rounds.smallBaselineNs.push(figures[0]!);
  rounds.smallScrubNs.push(figures[1]!);
  rounds.copyMBs.push(figures[2]!);
  rounds.cleanMBs.push(figures[3]!);
  rounds.dirtyMBs.push(figures[4]!);
}

const result = {
  machine: machineFacts("pnpm bench:scrub"),
  smallResponse: {
    addedNs: median(rounds.smallScrubNs) - median(rounds.smallBaselineNs),
  },
  largeBodyMBs: {
    copy: median(rounds.copyMBs),
    scrubNoSecret: median(rounds.cleanMBs),
    scrubSecretEvery4KiB: median(rounds.dirtyMBs),
  },
  rounds,
};
console.log(
  `Credential scrub — ${result.machine.cpu}, Node ${result.machine.node}, median of ${ROUNDS}`,
);
console.log(
  `  small response (5 headers, 64-byte body): +${result.smallResponse.addedNs.toFixed(0)} ns`,
);
console.log(
  `  64 KiB chunks, copy (Buffer.from):        ${result.largeBodyMBs.copy.toFixed(0)} MB/s`,
);
console.log(
  `  64 KiB chunks, scrub, no secret:          ${result.largeBodyMBs.scrubNoSecret.toFixed(0)} MB/s`,
);
console.log(
  `  64 KiB chunks, scrub, secret every 4 KiB: ${result.largeBodyMBs.scrubSecretEvery4KiB.toFixed(0)} MB/s`,
);
writeJson(jsonOutputPath(), result);
