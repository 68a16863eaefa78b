export { decodeUtf8Body, readJsonObjectBody } from "./body";
export { isEventTypePattern, matchesEventType, subscribesTo } from "./event-type-filter";
export {
  type HeaderPairs,
  type HeaderRecord,
  type HeadersInput,
  type NormalizedHeaders,
  normalizeHeaders,
  normalizeRawHeaders,
  pickHeaders,
} from "./headers";
export {
  hmacSha256,
  timingSafeEqualString,
  type VerifyHmacSha256HexInput,
  verifyHmacSha256Hex,
} from "./hmac";
export {
  DEFAULT_STANDARD_WEBHOOK_TOLERANCE_SECONDS,
  decodeStandardWebhookSecret,
  generateStandardWebhookSecret,
  type SignStandardWebhookInput,
  STANDARD_WEBHOOK_SECRET_PREFIX,
  type StandardWebhookFailure,
  type StandardWebhookHeaders,
  signStandardWebhook,
  type VerifyStandardWebhookInput,
  type VerifyStandardWebhookResult,
  verifyStandardWebhook,
} from "./standard-webhooks";
export { isWithinTolerance } from "./timestamps";
