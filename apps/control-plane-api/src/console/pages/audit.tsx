import type { Hono } from "hono";
import { apiError } from "../api-client";
import { apiFailurePage, asJson, type ConsoleEnv, itemsOf, renderPage, seg, str } from "../context";
import { formatInstant } from "../layout";

/**
 * The audit log: operators see the deployment's whole chain, organizations their own entries
 * (the API decides which by the token). Both see the chain's verification.
 */
export function registerAuditPages(router: Hono<ConsoleEnv>): void {
  router.get("/audit", async (c) => {
    const before = c.req.query("before");
    const query = `limit=50${before && /^\d+$/.test(before) ? `&before=${seg(before)}` : ""}`;
    // The API decides what each principal may see: operators list and verify the deployment's
    // entries (every organization's); organization admins verify their own, viewers only list.
    const api = c.get("api");
    const [page, verification] = await Promise.all([
      api("GET", `/v1/audit?${query}`),
      api("GET", "/v1/audit/verify"),
    ]);
    if (page.status !== 200 && verification.status !== 200) return apiFailurePage(c, page);
    const entries = page.status === 200 ? asJson(page.body) : undefined;
    const check = verification.status === 200 ? asJson(verification.body) : undefined;
    const firstInvalid = asJson(check?.firstInvalid);
    return renderPage(
      c,
      "Audit log",
      <>
        {check ? (
          <p class={`notice ${check.ok === true ? "ok" : "error"}`} role="status">
            {check.ok === true
              ? `Chain verified: ${str(check.checkedEntries)} entries (${str(check.scope)}).`
              : `Chain broken at entry ${str(firstInvalid.seq)} (${str(firstInvalid.reason)}) after ${str(check.checkedEntries)} valid entries.`}
          </p>
        ) : (
          <p class="notice">{apiError(verification).message}</p>
        )}
        {entries ? (
          // Wide (organization ids) on a narrow screen it scrolls: focusable so a keyboard can.
          <section class="table-wrap" tabindex={0} aria-label="Audit entries">
            <table>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">When</th>
                  <th scope="col">Organization</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Subject</th>
                </tr>
              </thead>
              <tbody>
                {itemsOf(entries).map((entry) => (
                  <tr>
                    <td>{str(entry.seq)}</td>
                    <td>{formatInstant(entry.createdAt)}</td>
                    <td>
                      {entry.organizationId === null ? (
                        "deployment"
                      ) : (
                        <code>{str(entry.organizationId)}</code>
                      )}
                    </td>
                    <td>
                      <code>{str(entry.actor)}</code>
                    </td>
                    <td>{str(entry.action)}</td>
                    <td>
                      {str(entry.subjectType)} <code>{str(entry.subjectId)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        ) : (
          <p>{apiError(page).message}</p>
        )}
        {typeof entries?.nextBefore === "number" ? (
          <p>
            <a href={`/console/audit?before=${entries.nextBefore}`}>Older entries</a>
          </p>
        ) : null}
      </>,
    );
  });
}
