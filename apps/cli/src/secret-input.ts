import { usageError } from "./api-client";

/**
 * Secrets (API keys, client secrets, tokens for `keyway login`) never come from the command
 * line, where other users see them in the process list and shells keep them in history: on a
 * terminal the CLI asks with a prompt that does not echo, otherwise it reads standard input.
 */
export interface SecretInput {
  readonly isTTY: boolean;
  /** Everything on standard input, up to its end. */
  readAll(): Promise<string>;
  /** Asks `question` on the terminal without echoing the answer. */
  promptHidden(question: string): Promise<string>;
}

/**
 * Reads one value per field: each from a hidden prompt on a terminal; from standard input
 * otherwise — the whole input (one trailing newline dropped) for a single field, a JSON object
 * `{ "<field>": "<value>", … }` for several.
 */
export async function readSecrets(
  input: SecretInput | undefined,
  fields: readonly string[],
): Promise<Record<string, string>> {
  if (input === undefined) throw usageError("no standard input to read the secret from");
  if (fields.length === 0) return {};
  const secrets: Record<string, string> = {};
  if (input.isTTY) {
    for (const field of fields) {
      const value = await input.promptHidden(`${field}: `);
      if (value === "") throw usageError(`${field} is empty`);
      secrets[field] = value;
    }
    return secrets;
  }
  const text = await input.readAll();
  if (fields.length === 1) {
    const [field] = fields as [string];
    const value = text.replace(/\r?\n$/, "");
    if (value === "") throw usageError(`${field} is empty: pipe the secret on standard input`);
    return { [field]: value };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw usageError(
      `standard input must be a JSON object with ${fields.map((f) => `"${f}"`).join(", ")}`,
    );
  for (const field of fields) {
    const value = (parsed as Record<string, unknown>)[field];
    if (typeof value !== "string" || value === "")
      throw usageError(`standard input has no string "${field}"`);
    secrets[field] = value;
  }
  return secrets;
}

/** Standard input of this process (wired by `main.ts`). */
export function processSecretInput(
  stdin: NodeJS.ReadStream,
  prompt: NodeJS.WriteStream,
): SecretInput {
  return {
    isTTY: stdin.isTTY === true,
    async readAll() {
      const chunks: Buffer[] = [];
      for await (const chunk of stdin) chunks.push(Buffer.from(chunk));
      return Buffer.concat(chunks).toString("utf8");
    },
    promptHidden(question) {
      return new Promise((resolve, reject) => {
        // Echo goes off before the question appears: whatever is typed (or pasted) once it is
        // visible must not reach the screen.
        stdin.setRawMode(true);
        prompt.write(question);
        stdin.resume();
        stdin.setEncoding("utf8");
        let answer = "";
        const finish = (error?: Error) => {
          stdin.off("data", onData);
          stdin.setRawMode(false);
          stdin.pause();
          prompt.write("\n");
          if (error) reject(error);
          else resolve(answer);
        };
        const onData = (chunk: string) => {
          for (const char of chunk) {
            if (char === "\r" || char === "\n" || char === "\u0004") return finish();
            if (char === "\u0003") return finish(usageError("cancelled"));
            if (char === "\u007f" || char === "\b") answer = answer.slice(0, -1);
            else if (char >= " ") answer += char;
          }
        };
        stdin.on("data", onData);
      });
    },
  };
}
