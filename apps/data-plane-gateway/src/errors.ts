/**
 * Every refusal or failure the gateway answers a sandbox with (SPEC §7 "Errors to the sandbox"):
 * one class, a stable `code`, the HTTP status it maps to. Messages are written for the sandbox
 * and never hold a token, a credential or a request path.
 */
export const GATEWAY_ERRORS = {
  bad_request: 400,
  proxy_auth_required: 407,
  policy_denied: 403,
  private_address_denied: 403,
  misdirected_request: 421,
  credential_unavailable: 502,
  upstream_unreachable: 502,
  upstream_tls_error: 502,
  control_plane_unavailable: 502,
  upstream_timeout: 504,
  rate_limited: 429,
  upstream_circuit_open: 503,
  upstream_encoding_unsupported: 502,
  internal_error: 500,
} as const;

export type GatewayErrorCode = keyof typeof GATEWAY_ERRORS;

export class GatewayError extends Error {
  override readonly name = "GatewayError";
  readonly status: number;
  /** Sent as `Retry-After` (seconds) when set: rate limits and open circuits. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options);
    this.status = GATEWAY_ERRORS[code];
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** Anything thrown inside a stage, as the error the sandbox gets (never leaking its message). */
export function asGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  return new GatewayError("internal_error", "the gateway failed to handle the request", {
    cause: error,
  });
}

/** The JSON body of an error response: `{ "error": { "code", "message" } }`. */
export function errorBody(error: GatewayError): string {
  return JSON.stringify({ error: { code: error.code, message: error.message } });
}
