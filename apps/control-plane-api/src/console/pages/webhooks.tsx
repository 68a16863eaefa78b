import type { Hono } from "hono";
import { type ApiErrorView, apiError } from "../api-client";
import {
  apiFailurePage,
  asJson,
  asList,
  type ConsoleContext,
  type ConsoleEnv,
  itemsOf,
  type Json,
  load,
  renderPage,
  seg,
  str,
} from "../context";
import {
  ActionButton,
  Copyable,
  Csrf,
  DoneNotice,
  ErrorNotice,
  formatInstant,
  Status,
} from "../layout";

/** Webhook subscriptions, received events, their deliveries and attempts, replay. */
export function registerWebhookPages(router: Hono<ConsoleEnv>): void {
  router.get("/webhooks", (c) => webhooksPage(c));

  router.post("/webhooks/subscriptions", async (c) => {
    const form = c.get("form");
    const body: Json = {
      url: form.url ?? "",
      eventTypes: (form.eventTypes ?? "")
        .split(/[\s,]+/)
        .map((type) => type.trim())
        .filter(Boolean),
    };
    if (form.description?.trim()) body.description = form.description.trim();
    const result = await c.get("api")("POST", "/v1/webhook-subscriptions", body);
    if (result.status !== 201 && result.status !== 200) return webhooksPage(c, apiError(result));
    return webhooksPage(c, undefined, asJson(result.body));
  });

  router.post("/webhooks/subscriptions/:id/delete", async (c) => {
    const result = await c.get("api")(
      "DELETE",
      `/v1/webhook-subscriptions/${seg(c.req.param("id"))}`,
    );
    if (result.status !== 204 && result.status !== 200) return apiFailurePage(c, result);
    return c.redirect("/console/webhooks?done=deleted", 303);
  });

  router.get("/webhooks/events/:id", async (c) => {
    const id = c.req.param("id");
    const loaded = await load(c, `/v1/webhook-events/${seg(id)}`);
    if (!loaded.ok) return loaded.response;
    const event = loaded.body;
    const session = c.get("session");
    return renderPage(
      c,
      `Event ${str(event.eventType)}`,
      <>
        <DoneNotice done={c.req.query("done")} />
        <dl class="facts">
          <dt>Id</dt>
          <dd>
            <code>{str(event.id)}</code>
          </dd>
          <dt>Target</dt>
          <dd>{str(event.targetKey)}</dd>
          <dt>Status</dt>
          <dd>
            <Status value={str(event.status)} />
          </dd>
          <dt>Received</dt>
          <dd>{formatInstant(event.receivedAt)}</dd>
        </dl>
        <h2>Deliveries</h2>
        {asList(event.deliveries).length === 0 ? <p>No deliveries.</p> : null}
        {asList(event.deliveries).map((delivery) => (
          <section aria-labelledby={`delivery-${str(delivery.id)}`}>
            <h3 id={`delivery-${str(delivery.id)}`}>
              Delivery <code>{str(delivery.id)}</code>: <Status value={str(delivery.status)} />
            </h3>
            <p>
              Subscription <code>{str(delivery.subscriptionId)}</code>, {str(delivery.attempts)}{" "}
              attempt(s){delivery.lastError ? `, last error: ${str(delivery.lastError)}` : ""}
            </p>
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Attempt</th>
                    <th scope="col">Started</th>
                    <th scope="col">Response</th>
                    <th scope="col">Error</th>
                  </tr>
                </thead>
                <tbody>
                  {asList(delivery.attemptHistory).map((attempt) => (
                    <tr>
                      <td>{str(attempt.attempt)}</td>
                      <td>{formatInstant(attempt.startedAt)}</td>
                      <td>{str(attempt.responseStatus) || "—"}</td>
                      <td>{str(attempt.error) || "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <ActionButton
              session={session}
              action={`/console/webhooks/deliveries/${seg(str(delivery.id))}/replay`}
              label={`Replay delivery ${str(delivery.id)}`}
              hidden={{ eventId: str(event.id) }}
            />
          </section>
        ))}
        <h2>Payload</h2>
        <pre>{JSON.stringify(event.payload, null, 2)}</pre>
      </>,
    );
  });

  router.post("/webhooks/deliveries/:id/replay", async (c) => {
    const result = await c.get("api")(
      "POST",
      `/v1/webhook-deliveries/${seg(c.req.param("id"))}/replay`,
    );
    if (result.status !== 200 && result.status !== 202) return apiFailurePage(c, result);
    const eventId = c.get("form").eventId ?? str(asJson(result.body).eventId);
    return c.redirect(`/console/webhooks/events/${seg(eventId)}?done=replayed`, 303);
  });
}

async function webhooksPage(c: ConsoleContext, error?: ApiErrorView, created?: Json) {
  const [subscriptions, events] = await Promise.all([
    load(c, "/v1/webhook-subscriptions"),
    load(c, "/v1/webhook-events?limit=50"),
  ]);
  if (!subscriptions.ok) return subscriptions.response;
  if (!events.ok) return events.response;
  const session = c.get("session");
  return renderPage(
    c,
    "Webhooks",
    <>
      <DoneNotice done={c.req.query("done")} />
      {created ? (
        <section class="secret-once" aria-labelledby="secret-heading">
          <h2 id="secret-heading">Signing secret of the new subscription</h2>
          <p>Shown once. Your endpoint verifies deliveries with it (Standard Webhooks).</p>
          <Copyable id="webhook-secret" label="Signing secret" text={str(created.secret)} />
        </section>
      ) : null}
      <h2>Subscriptions</h2>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">URL</th>
              <th scope="col">Event types</th>
              <th scope="col">Enabled</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {itemsOf(subscriptions.body).map((subscription) => (
              <tr>
                <td>{str(subscription.url)}</td>
                <td>
                  {(Array.isArray(subscription.eventTypes) ? subscription.eventTypes : []).join(
                    ", ",
                  )}
                </td>
                <td>
                  {subscription.enabled === true
                    ? "yes"
                    : `no (${str(subscription.disabledReason)})`}
                </td>
                <td>
                  <ActionButton
                    session={session}
                    action={`/console/webhooks/subscriptions/${seg(str(subscription.id))}/delete`}
                    label="Delete"
                    danger
                    confirm="Delete this subscription?"
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2 id="new-subscription">New subscription</h2>
      <ErrorNotice error={error} />
      <form
        method="post"
        action="/console/webhooks/subscriptions"
        class="stack"
        aria-labelledby="new-subscription"
      >
        <Csrf session={session} />
        <div class="field">
          <label for="sub-url">Endpoint URL (required)</label>
          <input type="url" id="sub-url" name="url" required />
        </div>
        <div class="field">
          <label for="sub-types">Event types (required)</label>
          <p class="help" id="sub-types-help">
            Separated by spaces or commas; patterns like <code>github.pull_request.*</code>.
          </p>
          <input
            type="text"
            id="sub-types"
            name="eventTypes"
            required
            aria-describedby="sub-types-help"
          />
        </div>
        <div class="field">
          <label for="sub-description">Description</label>
          <input type="text" id="sub-description" name="description" />
        </div>
        <div>
          <button type="submit">Subscribe</button>
        </div>
      </form>
      <h2>Recent events</h2>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Received</th>
              <th scope="col">Type</th>
              <th scope="col">Target</th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {itemsOf(events.body).map((event) => (
              <tr>
                <td>{formatInstant(event.receivedAt)}</td>
                <td>
                  <a href={`/console/webhooks/events/${seg(str(event.id))}`}>
                    {str(event.eventType)}
                  </a>
                </td>
                <td>{str(event.targetKey)}</td>
                <td>
                  <Status value={str(event.status)} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>,
    error ? 400 : 200,
  );
}
