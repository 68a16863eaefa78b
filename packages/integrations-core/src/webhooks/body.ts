import { isJsonObject, type JsonObject } from "../json";

/** Strict UTF-8 (invalid bytes throw); one decoder for every request (a decode call keeps no state). */
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/** A webhook body as text; throws a `TypeError` when it is not valid UTF-8. */
export function decodeUtf8Body(raw: Uint8Array): string {
  return STRICT_UTF8.decode(raw);
}

/** A webhook body that is a UTF-8 JSON object, or undefined (bad bytes, bad JSON, not an object). */
export function readJsonObjectBody(raw: Uint8Array): JsonObject | undefined {
  try {
    const parsed: unknown = JSON.parse(decodeUtf8Body(raw));
    return isJsonObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}
