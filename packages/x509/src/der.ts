/**
 * The few DER (X.690) encodings a leaf certificate needs, so that issuing one is a handful of
 * buffer concatenations and one signature instead of a generic ASN.1 object model.
 */

/** Tag-length-value with a definite length (short form below 128 bytes, long form above). */
export function tlv(tag: number, ...contents: readonly Uint8Array[]): Buffer {
  const body = Buffer.concat(contents);
  const length = body.length;
  let header: Buffer;
  if (length < 0x80) header = Buffer.from([tag, length]);
  else if (length <= 0xff) header = Buffer.from([tag, 0x81, length]);
  else if (length <= 0xffff) header = Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
  else header = Buffer.from([tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff]);
  return Buffer.concat([header, body]);
}

export const sequence = (...contents: readonly Uint8Array[]) => tlv(0x30, ...contents);
export const set = (...contents: readonly Uint8Array[]) => tlv(0x31, ...contents);
export const octetString = (bytes: Uint8Array) => tlv(0x04, bytes);
export const utf8String = (text: string) => tlv(0x0c, Buffer.from(text, "utf8"));
/** `[n]` EXPLICIT, constructed. */
export const explicit = (n: number, ...contents: readonly Uint8Array[]) =>
  tlv(0xa0 | n, ...contents);
/** `[n]` IMPLICIT, primitive (a GeneralName such as dNSName [2] or iPAddress [7]). */
export const implicitPrimitive = (n: number, bytes: Uint8Array) => tlv(0x80 | n, bytes);
/** A BIT STRING of whole bytes (no unused bits). */
export const bitString = (bytes: Uint8Array) => tlv(0x03, Buffer.from([0]), bytes);

/** An INTEGER from big-endian magnitude bytes, made positive and minimal. */
export function unsignedInteger(bytes: Uint8Array): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  const needsPad = (trimmed[0] ?? 0) & 0x80;
  return tlv(0x02, needsPad ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

/** An OBJECT IDENTIFIER from dotted form, e.g. `2.5.4.3`. */
export function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split(".").map(Number);
  const [first = 0, second = 0, ...rest] = arcs;
  const bytes: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const groups = [arc & 0x7f];
    for (let value = Math.floor(arc / 128); value > 0; value = Math.floor(value / 128)) {
      groups.unshift((value & 0x7f) | 0x80);
    }
    bytes.push(...groups);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/**
 * RFC 5280 §4.1.2.5: UTCTime (`YYMMDDHHMMSSZ`) for years 1950–2049, GeneralizedTime
 * (`YYYYMMDDHHMMSSZ`) otherwise; whole seconds, UTC.
 */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const pad = (n: number) => String(n).padStart(2, "0");
  const rest =
    pad(date.getUTCMonth() + 1) +
    pad(date.getUTCDate()) +
    pad(date.getUTCHours()) +
    pad(date.getUTCMinutes()) +
    pad(date.getUTCSeconds()) +
    "Z";
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(pad(year % 100) + rest, "ascii"));
  return tlv(0x18, Buffer.from(String(year).padStart(4, "0") + rest, "ascii"));
}
