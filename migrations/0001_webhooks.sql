CREATE TABLE "webhook_delivery_attempts" (
	"id" text PRIMARY KEY NOT NULL,
	"delivery_id" text NOT NULL,
	"organization_id" text NOT NULL,
	"attempt" integer NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"duration_ms" integer NOT NULL,
	"response_status" integer,
	"response_body" text,
	"error" text
);
--> statement-breakpoint
CREATE TABLE "webhook_redeliveries" (
	"target_id" text NOT NULL,
	"external_delivery_id" text NOT NULL,
	"provider_delivery_id" text NOT NULL,
	"requested_at" timestamp with time zone NOT NULL,
	"response_status" integer
);
--> statement-breakpoint
ALTER TABLE "webhook_events" ADD COLUMN "external_subject_id" text;--> statement-breakpoint
ALTER TABLE "webhook_events" ADD COLUMN "provider_retry" integer;--> statement-breakpoint
ALTER TABLE "webhook_subscriptions" ADD COLUMN "description" text;--> statement-breakpoint
ALTER TABLE "webhook_subscriptions" ADD COLUMN "previous_secret_ciphertext" text;--> statement-breakpoint
ALTER TABLE "webhook_subscriptions" ADD COLUMN "previous_secret_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_subscriptions" ADD COLUMN "disabled_reason" text;--> statement-breakpoint
ALTER TABLE "webhook_subscriptions" ADD COLUMN "updated_at" timestamp with time zone DEFAULT now() NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_delivery_attempts" ADD CONSTRAINT "webhook_delivery_attempts_delivery_id_webhook_deliveries_id_fk" FOREIGN KEY ("delivery_id") REFERENCES "public"."webhook_deliveries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_redeliveries" ADD CONSTRAINT "webhook_redeliveries_target_id_integration_targets_id_fk" FOREIGN KEY ("target_id") REFERENCES "public"."integration_targets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "webhook_delivery_attempts_key" ON "webhook_delivery_attempts" USING btree ("delivery_id","attempt");--> statement-breakpoint
CREATE INDEX "webhook_delivery_attempts_started_idx" ON "webhook_delivery_attempts" USING btree ("started_at");--> statement-breakpoint
CREATE UNIQUE INDEX "webhook_redeliveries_key" ON "webhook_redeliveries" USING btree ("target_id","external_delivery_id");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_org_idx" ON "webhook_deliveries" USING btree ("organization_id","created_at");--> statement-breakpoint
CREATE INDEX "webhook_events_status_idx" ON "webhook_events" USING btree ("status","received_at");--> statement-breakpoint
CREATE INDEX "webhook_events_received_idx" ON "webhook_events" USING btree ("received_at");--> statement-breakpoint
CREATE INDEX "webhook_events_raw_body_idx" ON "webhook_events" USING btree ("received_at") WHERE "webhook_events"."raw_body" is not null;