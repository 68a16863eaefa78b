import { type ApiClient, CliError } from "./api-client";
import { EXIT } from "./exit-codes";

const PROFILE_ID = /^prof_[0-9A-Z]{26}$/;

/** A profile named on the command line by id (`prof_…`) or by name (looked up in the list). */
export async function resolveProfileId(api: ApiClient, ref: string): Promise<string> {
  if (PROFILE_ID.test(ref)) return ref;
  const page = await api.request<{ items: { id: string; name: string }[] }>(
    "GET",
    "/v1/sandbox-profiles",
  );
  const found = page.items.find((p) => p.name === ref);
  if (!found) throw new CliError("not_found", `no sandbox profile named "${ref}"`, EXIT.api);
  return found.id;
}

export const profilePath = (id: string) => `/v1/sandbox-profiles/${encodeURIComponent(id)}`;
