import { runCli } from "./cli";
import { processSecretInput } from "./secret-input";

// Thin entry (`pnpm keyway …`): all behaviour lives in runCli.
process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  clock: { now: () => new Date() },
  env: process.env,
  stdin: processSecretInput(process.stdin, process.stderr),
  signals: process,
  stdinIsTTY: process.stdin.isTTY === true,
});
