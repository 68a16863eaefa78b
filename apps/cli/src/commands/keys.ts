import type { KeyRotationResult } from "@keyway/control-plane-api/keys/rotate";
import type { Command } from "../context";
import { CONFIG_OPTION, loadCliConfig, withConfigErrors, withDatabase } from "../database";
import { EXIT } from "../exit-codes";
import { formatTable } from "../table";

export const keyCommands: Command[] = [
  {
    name: "keys rotate",
    summary: "re-encrypt every stored secret under the current master key (keys.master.current)",
    help: "Works on the database directly (database.url of --config FILE, else $KEYWAY_CONFIG, else ./keyway.toml); exits 1 if a row did not decrypt.",
    options: CONFIG_OPTION,
    async run(context) {
      const config = await loadCliConfig(context);
      // Loaded on use: the API commands start without the database and key-rotation code.
      const [{ rotateKeys }, { createKeyRing }, { requireSetting }] = await Promise.all([
        import("@keyway/control-plane-api/keys/rotate"),
        import("@keyway/crypto"),
        import("@keyway/config"),
      ]);
      const keyRing = await withConfigErrors(() =>
        createKeyRing(requireSetting(config.keys.master, "keys.master")),
      );
      return withDatabase(config, async ({ db }) => {
        const result = await rotateKeys(db, keyRing, {
          clock: context.deps.clock,
          actor: "cli:keys-rotate",
        });
        context.out.result(result, () => context.deps.stdout(describeRotation(result)));
        return result.complete ? EXIT.ok : EXIT.api;
      });
    },
  },
];

function describeRotation(result: KeyRotationResult): string {
  const table = formatTable(
    ["column", "rows", "re-encrypted", "failed"],
    result.columns.map((c) => [`${c.table}.${c.column}`, c.scanned, c.reencrypted, c.failed]),
    [1, 2, 3],
  );
  if (result.complete) {
    return `${table}\n\nEvery secret now uses key version ${result.keyVersion}; older keys can be removed from keys.master.\n`;
  }
  const failed = result.columns.flatMap((c) => c.failedIds.map((id) => `  ${c.table} ${id}`));
  return (
    `${table}\n\n${failed.length} row(s) did not decrypt with any key in the ring and were left as they are:\n` +
    `${failed.join("\n")}\nKeep the older keys until these rows are fixed or removed.\n`
  );
}
