CREATE TABLE "cached_credentials" (
	"id" text PRIMARY KEY NOT NULL,
	"connection_id" text NOT NULL,
	"organization_id" text NOT NULL,
	"resolver" text NOT NULL,
	"scope_digest" text NOT NULL,
	"value_ciphertext" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "cached_credentials" ADD CONSTRAINT "cached_credentials_connection_id_integration_connections_id_fk" FOREIGN KEY ("connection_id") REFERENCES "public"."integration_connections"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "cached_credentials_scope_key" ON "cached_credentials" USING btree ("connection_id","scope_digest");