import { importSPKI, jwtVerify } from "jose";
import { HttpResponse, http, type RequestHandler } from "msw";

/**
 * Stands in for GitHub's App webhook delivery endpoints in tests (msw handlers; GitHub cannot be
 * reached from here), shaped from "REST API endpoints for GitHub App webhooks":
 *
 * - both endpoints take only the app JWT: RS256, checked against the app's public key, its `iss`
 *   and its expiry (on the test's clock); anything else is 401 "A JSON web token could not be
 *   decoded";
 * - `GET /app/hook/deliveries` lists newest first, `per_page` (default 30, max 100), the next
 *   page's `cursor` in `Link: <…>; rel="next"`;
 * - `POST /app/hook/deliveries/{delivery_id}/attempts` answers 202 and makes a new delivery of
 *   the same guid (`redelivery: true`), sent through `deliver` — the app's webhook URL — whose
 *   answer becomes its `status_code`.
 */

/** A delivery as GitHub lists it. */
export interface GitHubHookDelivery {
  id: number;
  guid: string;
  delivered_at: string;
  redelivery: boolean;
  duration: number;
  status: string;
  status_code: number;
  event: string;
  action: string | null;
  installation_id: number | null;
  repository_id: number | null;
  throttled_at: string | null;
}

export interface GitHubAppWebhookStandInOptions {
  /** The REST API root the handlers answer on (`https://api.github.com`, `https://HOST/api/v3`). */
  apiBaseUrl: string;
  /** The app's public key (SPKI PEM): JWTs not signed by its private key are refused. */
  publicKeyPem: string;
  /** The `iss` GitHub accepts for the app (its client id or app id). */
  issuer: string;
  /** The instant JWT expiry is checked at. */
  now: () => Date;
  /** Sends a redelivery to the app's webhook URL; returns what it answered (0: no answer). */
  deliver?: (delivery: GitHubHookDelivery) => Promise<number>;
}

export interface GitHubAppWebhookStandIn {
  handlers: RequestHandler[];
  /** Records a delivery GitHub made (a test's history of the app's webhook). */
  addDelivery(input: {
    guid: string;
    deliveredAt: Date;
    statusCode: number;
    event?: string;
    action?: string;
    redelivery?: boolean;
  }): GitHubHookDelivery;
  /** Every delivery of an event, oldest first. */
  deliveriesOf(guid: string): GitHubHookDelivery[];
  /** Listing pages served (successfully) so far. */
  readonly pagesServed: number;
  /** While true, every request answers 503 (a GitHub outage). */
  unavailable: boolean;
}

const BAD_JWT = {
  message: "A JSON web token could not be decoded",
  documentation_url: "https://docs.github.com/rest",
};

export function createGitHubAppWebhookStandIn(
  options: GitHubAppWebhookStandInOptions,
): GitHubAppWebhookStandIn {
  const api = options.apiBaseUrl.replace(/\/+$/, "");
  /** Newest first, as GitHub lists them. */
  const deliveries: GitHubHookDelivery[] = [];
  let nextId = 9_100_000_001;
  let pagesServed = 0;

  function addDelivery(input: Parameters<GitHubAppWebhookStandIn["addDelivery"]>[0]) {
    const statusCode = input.statusCode;
    const delivery: GitHubHookDelivery = {
      id: nextId++,
      guid: input.guid,
      delivered_at: input.deliveredAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
      redelivery: input.redelivery ?? false,
      duration: 0.12,
      status:
        statusCode === 0
          ? "failed to connect"
          : statusCode < 300
            ? "OK"
            : `Invalid HTTP Response: ${statusCode}`,
      status_code: statusCode,
      event: input.event ?? "issues",
      action: input.action ?? "opened",
      installation_id: 4242,
      repository_id: 1296269,
      throttled_at: null,
    };
    deliveries.push(delivery);
    deliveries.sort((a, b) => b.delivered_at.localeCompare(a.delivered_at) || b.id - a.id);
    return delivery;
  }

  async function refusal(request: Request): Promise<Response | undefined> {
    if (standIn.unavailable) {
      return HttpResponse.json({ message: "Service Unavailable" }, { status: 503 });
    }
    const jwt = /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
    if (jwt === undefined) {
      return HttpResponse.json({ message: "Requires authentication" }, { status: 401 });
    }
    try {
      const key = await importSPKI(options.publicKeyPem, "RS256");
      await jwtVerify(jwt, key, {
        algorithms: ["RS256"],
        issuer: options.issuer,
        currentDate: options.now(),
      });
      return undefined;
    } catch {
      return HttpResponse.json(BAD_JWT, { status: 401 });
    }
  }

  const handlers = [
    http.get(`${api}/app/hook/deliveries`, async ({ request }) => {
      const refused = await refusal(request);
      if (refused !== undefined) return refused;
      const url = new URL(request.url);
      const perPage = Math.min(Number(url.searchParams.get("per_page") ?? "30") || 30, 100);
      const cursor = url.searchParams.get("cursor");
      let start = 0;
      if (cursor !== null) {
        start = deliveries.findIndex((delivery) => `v1_${delivery.id}` === cursor);
        if (start < 0) {
          return HttpResponse.json({ message: "Invalid cursor" }, { status: 422 });
        }
      }
      const page = deliveries.slice(start, start + perPage);
      const next = deliveries[start + perPage];
      pagesServed++;
      const headers = new Headers();
      if (next !== undefined) {
        headers.set(
          "link",
          `<${api}/app/hook/deliveries?per_page=${perPage}&cursor=v1_${next.id}>; rel="next"`,
        );
      }
      return HttpResponse.json(page, { headers });
    }),

    http.post(`${api}/app/hook/deliveries/:deliveryId/attempts`, async ({ request, params }) => {
      const refused = await refusal(request);
      if (refused !== undefined) return refused;
      const original = deliveries.find((delivery) => String(delivery.id) === params.deliveryId);
      if (original === undefined) {
        return HttpResponse.json({ message: "Not Found" }, { status: 404 });
      }
      const statusCode = options.deliver ? await options.deliver(original) : 200;
      addDelivery({
        guid: original.guid,
        deliveredAt: options.now(),
        statusCode,
        event: original.event,
        ...(original.action !== null ? { action: original.action } : {}),
        redelivery: true,
      });
      return HttpResponse.json({}, { status: 202 });
    }),
  ];

  const standIn: GitHubAppWebhookStandIn = {
    handlers,
    addDelivery,
    deliveriesOf: (guid) => deliveries.filter((delivery) => delivery.guid === guid).reverse(),
    get pagesServed() {
      return pagesServed;
    },
    unavailable: false,
  };
  return standIn;
}
