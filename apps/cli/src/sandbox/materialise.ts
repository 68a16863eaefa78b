import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { caBundle, systemRootsPem } from "./ca-bundle";
import {
  type SandboxLayout,
  type StartedSession,
  sandboxFiles,
  sandboxLayout,
} from "./environment";
import { nodeProxyPreload } from "./node-preload";

/** A sandbox's files on disk and how to take them away again. */
export interface MaterialisedSandbox {
  layout: SandboxLayout;
  /** Removes what `materialiseSandbox` created: the whole directory it made, else each file. */
  remove(): Promise<void>;
}

/**
 * Writes the session's files, the CA bundle and the Node preload. Without `home`/`workspace`
 * both live in a fresh private temporary directory (`keyway-sandbox-…/{home,workspace}`).
 */
export async function materialiseSandbox(
  session: StartedSession,
  options: { home?: string | undefined; workspace?: string | undefined },
): Promise<MaterialisedSandbox> {
  const needsRoot = options.home === undefined || options.workspace === undefined;
  const root = needsRoot ? await mkdtemp(join(tmpdir(), "keyway-sandbox-")) : undefined;
  const layout = sandboxLayout(
    options.home ?? join(root ?? "", "home"),
    options.workspace ?? join(root ?? "", "workspace"),
  );
  const files = sandboxFiles(session, layout, {
    caBundle: caBundle((await systemRootsPem()).pem, session.caCertPem),
    nodePreload: nodeProxyPreload(),
  });
  const written: string[] = [];
  const remove = async () => {
    if (root !== undefined) await rm(root, { recursive: true, force: true });
    for (const path of written) await rm(path, { force: true });
    await rm(dirname(layout.caBundlePath), { recursive: true, force: true });
  };
  try {
    await mkdir(layout.home, { recursive: true, mode: 0o700 });
    await mkdir(layout.workspace, { recursive: true, mode: 0o700 });
    for (const file of files) {
      await mkdir(dirname(file.path), { recursive: true, mode: 0o700 });
      written.push(file.path);
      await writeFile(file.path, file.content, { mode: file.mode });
      // writeFile's mode is filtered by the umask and ignored for an existing file.
      await chmod(file.path, file.mode);
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return { layout, remove };
}
