import type { IncomingHttpHeaders } from "node:http";
import { PassThrough, type Readable, type Transform } from "node:stream";
import {
  constants,
  createBrotliDecompress,
  createGunzip,
  createInflate,
  createInflateRaw,
} from "node:zlib";
import { GatewayError } from "../errors";

/**
 * Compressed answers on routes whose credential is scrubbed. A secret inside a gzip stream is not
 * its own bytes, so it could not be found: on those routes the gateway asks for
 * `accept-encoding: identity` (`inject.ts`), and an upstream that compresses anyway has its body
 * decoded here before the scrub and delivered decoded. Codings node:zlib decodes are accepted
 * alone; anything else (zstd, compress, several stacked codings) is refused, since it could not
 * be checked.
 */

export type ContentCoding = "identity" | "gzip" | "deflate" | "br";

export const ENCODING_UNSUPPORTED = new GatewayError(
  "upstream_encoding_unsupported",
  "the upstream's response uses a content encoding the gateway cannot check for credentials",
);

const CODINGS: Readonly<Record<string, ContentCoding>> = {
  identity: "identity",
  gzip: "gzip",
  "x-gzip": "gzip",
  deflate: "deflate",
  br: "br",
};

/** The one coding a `Content-Encoding` header names (`identity` when absent); null otherwise. */
export function contentCodingOf(header: string | string[] | undefined): ContentCoding | null {
  if (header === undefined) return "identity";
  let found: ContentCoding = "identity";
  for (const value of typeof header === "string" ? [header] : header) {
    for (const token of value.split(",")) {
      const name = token.trim().toLowerCase();
      if (name === "" || name === "identity") continue;
      const coding = Object.hasOwn(CODINGS, name) ? CODINGS[name] : undefined;
      // Unknown, or a second coding on top of the first.
      if (coding === undefined || found !== "identity") return null;
      found = coding;
    }
  }
  return found;
}

/** The response headers once the body is delivered decoded (its length is unknown up front). */
export function decodedHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const copy = { ...headers };
  delete copy["content-encoding"];
  delete copy["content-length"];
  return copy;
}

// Flushing on every input keeps a compressed event stream flowing event by event, and a body the
// upstream cut short yields what it had (as browsers and undici's fetch treat them).
const ZLIB_OPTIONS = { flush: constants.Z_SYNC_FLUSH, finishFlush: constants.Z_SYNC_FLUSH };
const BROTLI_OPTIONS = {
  flush: constants.BROTLI_OPERATION_FLUSH,
  finishFlush: constants.BROTLI_OPERATION_FLUSH,
};

/**
 * A decoder for `coding`. `deflate` is meant to be zlib-wrapped, but some servers send raw
 * deflate: the first byte tells (a zlib header's low nibble is 8, the deflate method).
 */
export function createDecoder(
  coding: Exclude<ContentCoding, "identity">,
  firstByte: number,
): Transform {
  switch (coding) {
    case "gzip":
      return createGunzip(ZLIB_OPTIONS);
    case "deflate":
      return (firstByte & 0x0f) === 0x08
        ? createInflate(ZLIB_OPTIONS)
        : createInflateRaw(ZLIB_OPTIONS);
    case "br":
      return createBrotliDecompress(BROTLI_OPTIONS);
  }
}

/** `source` decoded, for bodies read from node streams (the decoder is picked on the first chunk). */
export function decodeStream(
  source: Readable,
  coding: Exclude<ContentCoding, "identity">,
): Readable {
  const output = new PassThrough();
  let started = false;
  source.once("data", (first: Buffer) => {
    started = true;
    source.pause();
    const decoder = createDecoder(coding, first[0] ?? 0);
    decoder.once("error", (error) => output.destroy(error));
    decoder.write(first);
    source.pipe(decoder).pipe(output);
  });
  source.once("end", () => {
    if (!started) output.end();
  });
  source.once("error", (error) => output.destroy(error));
  return output;
}
