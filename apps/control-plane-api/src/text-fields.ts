import { z } from "@hono/zod-openapi";
import { singleLineTextSchema } from "@keyway/integrations-core";

/**
 * Text fields shared by the request schemas, by kind. Every string already passed the boundary
 * check (`input-text.ts`: no NUL, lone surrogate or control character but TAB, LF and CR); names
 * and references are one line as well (the `single-line` rule of `@keyway/integrations-core`).
 */

/** A name shown in lists and logs (organization, token, target, connection, profile). */
export const nameSchema = singleLineTextSchema.trim().min(1).max(200);

/** Free text that may span lines. */
export const descriptionSchema = z.string().trim().max(2000);

/** A reference to another resource by id or key. */
export const referenceSchema = singleLineTextSchema.min(1).max(200);
