import { createPrivateKey, type KeyObject } from "node:crypto";
import { OAuth2Error } from "@keyway/integrations-core";
import { SignJWT } from "jose";
import type { GitHubTargetConfig, GitHubTargetWithSecrets } from "./target-config";
import type { GitHubTargetSecrets } from "./target-secret-schema";

/** GitHub recommends backdating `iat` by 60 s against clock drift. */
const IAT_SKEW_SECONDS = 60;
/** GitHub refuses an `exp` more than 10 minutes ahead; 9 leaves room for our clock running slow. */
const LIFETIME_SECONDS = 9 * 60;

/**
 * The JWT `iss` for a target's GitHub App ("Generating a JSON Web Token (JWT) for a GitHub App"):
 * GitHub.com accepts the client ID or the app ID and recommends the client ID; GitHub Enterprise
 * Server documents the app ID (releases before 3.14 accept nothing else), so GHES prefers it and
 * falls back to the client ID only when no app ID is configured.
 */
export function appJwtIssuer(
  config: Pick<GitHubTargetConfig, "edition">,
  secrets: GitHubTargetSecrets,
): string | undefined {
  return config.edition === "cloud"
    ? (secrets.clientId ?? secrets.appId)
    : (secrets.appId ?? secrets.clientId);
}

export interface AppJwtInput {
  issuer: string;
  privateKeyPem: string;
  now: Date;
}

/**
 * Signs the short-lived RS256 JWT a GitHub App authenticates as itself with. Accepts the key as
 * GitHub hands it out (PKCS#1, `BEGIN RSA PRIVATE KEY`) or as PKCS#8, which is why the key goes
 * through node:crypto rather than jose's PKCS#8-only importer. A key that does not load is a
 * permanent failure: retrying cannot fix operator config.
 */
export async function signAppJwt(input: AppJwtInput): Promise<string> {
  const key = loadRsaPrivateKey(input.privateKeyPem);
  const nowSeconds = Math.floor(input.now.getTime() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: "RS256", typ: "JWT" })
    .setIssuer(input.issuer)
    .setIssuedAt(nowSeconds - IAT_SKEW_SECONDS)
    .setExpirationTime(nowSeconds + LIFETIME_SECONDS)
    .sign(key);
}

/**
 * The app JWT of a target's GitHub App, for endpoints that authenticate as the app itself
 * (installation tokens, webhook deliveries). A target without the key or an issuer is a
 * permanent failure: operator config, not something a retry fixes.
 */
export async function signTargetAppJwt(
  target: GitHubTargetWithSecrets,
  now: Date,
): Promise<string> {
  const issuer = appJwtIssuer(target.config, target.secrets);
  if (issuer === undefined || target.secrets.appPrivateKeyPem === undefined) {
    throw new OAuth2Error(
      "permanent",
      "missing_app_credentials",
      `target ${target.targetKey} needs appPrivateKeyPem and clientId or appId to authenticate as its GitHub App`,
    );
  }
  return signAppJwt({ issuer, privateKeyPem: target.secrets.appPrivateKeyPem, now });
}

function loadRsaPrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem" });
  } catch {
    throw new OAuth2Error(
      "permanent",
      "invalid_app_private_key",
      "the GitHub App private key does not load",
    );
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw new OAuth2Error(
      "permanent",
      "invalid_app_private_key",
      "the GitHub App private key is not an RSA key",
    );
  }
  return key;
}
