CREATE TABLE "spent_gateway_assertions" (
	"gateway_id" text NOT NULL,
	"jti" text NOT NULL,
	"forget_after" timestamp with time zone NOT NULL,
	CONSTRAINT "spent_gateway_assertions_gateway_id_jti_pk" PRIMARY KEY("gateway_id","jti")
);
--> statement-breakpoint
CREATE INDEX "spent_gateway_assertions_forget_after_idx" ON "spent_gateway_assertions" USING btree ("forget_after");