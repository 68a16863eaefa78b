import type { AuditProblem } from "@keyway/control-plane-api/audit/service";
import { type Command, positiveInteger, stringOption } from "../context";
import { CONFIG_OPTION, loadCliConfig, withDatabase } from "../database";
import { EXIT } from "../exit-codes";
import { shortTime } from "../output";

interface AuditEntry {
  seq: number;
  id: string;
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  createdAt: string;
}

interface AuditVerification {
  scope?: "deployment" | "organization";
  ok: boolean;
  checkedEntries: number;
  unsealedEntries?: number;
  firstInvalid?: {
    reason: AuditProblem;
    seq?: number | null;
    chainSeq?: number;
    id?: string | null;
  };
}

const AUDIT_PROBLEMS: Record<AuditProblem, string> = {
  hash_mismatch: "entry was altered",
  broken_link: "previous entry missing or altered (broken link)",
  checkpoint_head_missing: "newest entries removed (a signed checkpoint names a missing entry)",
  checkpoint_invalid: "checkpoint altered or not signed by this deployment's key",
};

export const auditCommands: Command[] = [
  {
    name: "audit list",
    summary:
      "list audit entries, newest first (the organization's; an operator's: the deployment's, or one organization's with --organization ID)",
    options: {
      limit: { type: "string" },
      before: { type: "string" },
      organization: { type: "string" },
    },
    async run(context) {
      const page = await (await context.api()).request<{
        items: AuditEntry[];
        nextBefore: number | null;
      }>("GET", "/v1/audit", {
        query: {
          limit: positiveInteger(stringOption(context.options, "limit"), "--limit"),
          before: positiveInteger(stringOption(context.options, "before"), "--before"),
          organizationId: stringOption(context.options, "organization"),
        },
      });
      context.out.result(page, () => {
        context.out.table(
          ["seq", "time", "actor", "action", "subject"],
          page.items.map((e) => [
            e.seq,
            shortTime(e.createdAt),
            e.actor,
            e.action,
            `${e.subjectType} ${e.subjectId}`,
          ]),
          [0],
        );
        if (page.nextBefore !== null)
          context.out.line(`\nmore: keyway audit list --before ${page.nextBefore}`);
      });
      return undefined;
    },
  },
  {
    name: "audit verify",
    summary: "recompute the audit log's hash chain and report the first broken entry",
    help: "Asks the API (GET /v1/audit/verify). With --from-database it reads the database of --config FILE\n(else $KEYWAY_CONFIG, else ./keyway.toml) directly, e.g. while the API is down. Exits 1 when the chain is broken.",
    options: { ...CONFIG_OPTION, "from-database": { type: "boolean" } },
    async run(context) {
      let result: AuditVerification;
      if (context.options["from-database"] === true) {
        const config = await loadCliConfig(context);
        const [
          { requireSetting },
          { createAuditSealer },
          { verifyAuditChain },
          { createLogger },
          { createKeyRing },
        ] = await Promise.all([
          import("@keyway/config"),
          import("@keyway/control-plane-api/audit/sealer"),
          import("@keyway/control-plane-api/audit/service"),
          import("@keyway/control-plane-api/logger"),
          import("@keyway/crypto"),
        ]);
        const keyRing = createKeyRing(requireSetting(config.keys.master, "keys.master"));
        result = await withDatabase(config, async ({ db }) => {
          // Entries recorded but not sealed yet (no API running, or just now) are sealed first, as
          // an API replica would; then every chain and its checkpoints are checked.
          const logger = createLogger({
            level: "warn",
            write: (line) => context.deps.stderr(`${line}\n`),
          });
          const sealer = createAuditSealer({ db, keyRing, clock: context.deps.clock, logger });
          await sealer.sealNow({ checkpoint: true });
          return verifyAuditChain(db, keyRing);
        });
      } else {
        if (context.options.config !== undefined)
          context.deps.stderr("note: --config is read only with --from-database\n");
        result = await (await context.api()).request<AuditVerification>("GET", "/v1/audit/verify");
      }
      context.out.result(result, () => {
        if (result.ok) {
          context.out.line(`audit chain ok: ${result.checkedEntries} entries checked`);
          return;
        }
        context.out.line(`audit chain BROKEN after ${result.checkedEntries} valid entries\n`);
        const bad = result.firstInvalid;
        context.out.table(
          ["seq", "chain seq", "id", "problem"],
          bad
            ? [[bad.seq ?? "", bad.chainSeq ?? "", bad.id ?? "", AUDIT_PROBLEMS[bad.reason]]]
            : [],
          [0, 1],
        );
      });
      return result.ok ? EXIT.ok : EXIT.api;
    },
  },
];
