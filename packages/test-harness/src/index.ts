export * from "./database-admin";
export * from "./http-servers";
export * from "./ports";
export * from "./postgres";
export * from "./test-database";
export * from "./tls";
