ALTER TABLE "oauth_sessions" ADD COLUMN "scopes" jsonb;--> statement-breakpoint
ALTER TABLE "oauth_sessions" ADD COLUMN "redirect_after" text;