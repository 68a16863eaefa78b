/**
 * Webhook subscription filters (SPEC §8): which event types a subscription receives.
 *
 * - `*` — every event;
 * - `github.pull_request.*` — every type under that prefix (`github.pull_request.opened`, and
 *   deeper ones), but not `github.pull_request` itself nor `github.pull_request_review.*`;
 * - anything else — that exact type.
 *
 * Types and patterns are dot-separated segments of lower-case letters, digits, `_` and `-`
 * (`http-api.invoice.paid`), at most 200 characters.
 */
const SEGMENT = "[a-z0-9_-]+";
const EVENT_TYPE = new RegExp(`^${SEGMENT}(\\.${SEGMENT})*$`);
const MAX_LENGTH = 200;

export function isEventTypePattern(pattern: string): boolean {
  if (pattern.length === 0 || pattern.length > MAX_LENGTH) return false;
  if (pattern === "*") return true;
  const exact = pattern.endsWith(".*") ? pattern.slice(0, -2) : pattern;
  return EVENT_TYPE.test(exact);
}

export function matchesEventType(pattern: string, eventType: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith(".*")) return eventType.startsWith(pattern.slice(0, -1));
  return pattern === eventType;
}

/** Whether any of a subscription's patterns selects the event type. */
export function subscribesTo(patterns: readonly string[], eventType: string): boolean {
  return patterns.some((pattern) => matchesEventType(pattern, eventType));
}
