/** Types of `demo-authorization-server.mjs` (plain JavaScript, so the walkthrough needs only node). */
export interface AuthorizationServerClient {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
}

export interface StartedAuthorizationServer {
  issuer: string;
  authorizationUrl: string;
  tokenUrl: string;
  revocationUrl: string;
  /** POST /token requests received, whatever their outcome. */
  tokenRequests(): number;
  /** Successful grants by `grant_type`. */
  grants(): Record<string, number>;
  /** Every refresh token issued so far, oldest first. */
  refreshTokens(): string[];
  close(): Promise<void>;
}

export function startAuthorizationServer(options: {
  port?: number;
  clients: AuthorizationServerClient[];
  autoApprove?: boolean;
  accessTokenTtlSeconds?: number;
  accountId?: string;
  quiet?: boolean;
}): Promise<StartedAuthorizationServer>;
