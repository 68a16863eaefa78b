CREATE TABLE "audit_seal_progress" (
	"id" integer PRIMARY KEY NOT NULL,
	"top_seq" bigint NOT NULL,
	"gaps" jsonb DEFAULT '[]'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_seals" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"chain" text NOT NULL,
	"chain_seq" bigint NOT NULL,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL
);
--> statement-breakpoint
-- The links sealed so far move to audit_seals; entries not sealed yet become the sealer's gaps
-- (ranges of seq with no sealed entry between them), which its next passes seal.
INSERT INTO "audit_seals" ("seq", "chain", "chain_seq", "prev_hash", "hash")
  SELECT "seq", "chain", "chain_seq", "prev_hash", "hash" FROM "audit_log"
  WHERE "hash" IS NOT NULL AND "chain" IS NOT NULL AND "chain_seq" IS NOT NULL AND "prev_hash" IS NOT NULL;--> statement-breakpoint
INSERT INTO "audit_seal_progress" ("id", "top_seq", "gaps")
  SELECT 1, coalesce((SELECT max("seq") FROM "audit_log"), 0),
    coalesce((
      SELECT jsonb_agg(jsonb_build_array("lo", "hi", 0, NULL) ORDER BY "lo")
      FROM (
        SELECT min("seq") AS "lo", max("seq") AS "hi" FROM (
          SELECT "seq", "n" - row_number() OVER (ORDER BY "seq") AS "island" FROM (
            SELECT "seq", "hash" IS NULL AS "unsealed", row_number() OVER (ORDER BY "seq") AS "n"
            FROM "audit_log"
          ) "numbered" WHERE "unsealed"
        ) "islands" GROUP BY "island"
      ) "ranges"
    ), '[]'::jsonb);--> statement-breakpoint
DROP INDEX "audit_log_chain_key";--> statement-breakpoint
DROP INDEX "audit_log_unsealed_idx";--> statement-breakpoint
CREATE UNIQUE INDEX "audit_seals_chain_key" ON "audit_seals" USING btree ("chain","chain_seq");--> statement-breakpoint
ALTER TABLE "audit_log" DROP COLUMN "chain";--> statement-breakpoint
ALTER TABLE "audit_log" DROP COLUMN "chain_seq";--> statement-breakpoint
ALTER TABLE "audit_log" DROP COLUMN "prev_hash";--> statement-breakpoint
ALTER TABLE "audit_log" DROP COLUMN "hash";