import { randomFillSync } from "node:crypto";

/**
 * Prefixed, time-sortable ids (`conn_01JD…`): 48 bits of milliseconds and 80 random bits in
 * Crockford base32 (26 characters, like a ULID), so ids sort by creation time as plain strings.
 */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export const ID_PREFIXES = {
  organization: "org",
  apiToken: "tok",
  target: "tgt",
  connection: "conn",
  credential: "cred",
  cachedCredential: "ccr",
  oauthSession: "oas",
  profile: "prof",
  profileVersion: "pver",
  binding: "bind",
  session: "sess",
  webhookEvent: "whe",
  webhookSubscription: "whs",
  webhookDelivery: "whd",
  webhookAttempt: "wha",
  audit: "aud",
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

/**
 * Random bytes for ids, drawn 4 KiB at a time (one `randomFillSync` per 409 ids): a
 * `randomBytes(10)` per id cost ≈ 13 µs, most of it the call into the CSPRNG and a new Buffer,
 * and webhook ingest makes two ids per event (`pnpm bench:webhooks --profile`).
 */
const randomPool = Buffer.alloc(4096);
let randomOffset = randomPool.length;

/** An id's characters are written here, then read out as one string (not built by 30 joins). */
const idBytes = Buffer.alloc(64);
const ALPHABET_CODES = Buffer.from(ALPHABET, "latin1");

export function newId(kind: IdKind, now: Date = new Date()): string {
  const prefix = ID_PREFIXES[kind];
  let at = idBytes.write(prefix, 0, "latin1");
  idBytes[at++] = 0x5f; // "_"
  let time = now.getTime();
  for (let i = at + 9; i >= at; i--) {
    idBytes[i] = ALPHABET_CODES[time % 32] as number;
    time = Math.floor(time / 32);
  }
  at += 10;
  if (randomOffset + 10 > randomPool.length) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  const start = randomOffset;
  randomOffset += 10;
  // 80 bits → 16 base32 characters, 5 bits each.
  let buffer = 0;
  let bits = 0;
  for (let i = start; i < start + 10; i++) {
    buffer = (buffer << 8) | (randomPool[i] as number);
    bits += 8;
    while (bits >= 5) {
      idBytes[at++] = ALPHABET_CODES[(buffer >> (bits - 5)) & 31] as number;
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  return idBytes.toString("latin1", 0, at);
}

const ID_PATTERN = /^[a-z]+_[0-9A-HJKMNP-TV-Z]{26}$/;

/** True when `value` looks like an id of `kind` (used to answer 404 early for foreign shapes). */
export function isId(kind: IdKind, value: string): boolean {
  return value.startsWith(`${ID_PREFIXES[kind]}_`) && ID_PATTERN.test(value);
}
