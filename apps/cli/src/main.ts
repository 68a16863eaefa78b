import { runCli } from "./cli";

// Thin entry (`pnpm keyway …`): all behaviour lives in runCli.
process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  clock: { now: () => new Date() },
});
