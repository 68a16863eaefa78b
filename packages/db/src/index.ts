export * from "./client";
export * from "./database-admin";
export * from "./database-failures";
export * from "./embedded-postgres";
export * from "./free-port";
export * from "./ids";
export * from "./migrate";
export * as schema from "./schema";
export * from "./schema";
