/**
 * A browser, as far as an OAuth2 authorization needs one: it follows redirects, keeps each
 * origin's cookies, and fills in the sign-in and consent forms of an authorization server's
 * pages (a form with a hidden `prompt` field: `login` gets a user name and password, `consent`
 * is submitted as is, or aborted with `deny`). It stops before requesting a URL that starts with
 * `stopAt` (the client's redirect URI) and returns it, or returns the final page it reached.
 */
export interface AuthorizationBrowsing {
  /** Stop at (do not request) the first URL starting with this. */
  stopAt?: string;
  /** Abort the consent prompt instead of approving it. */
  deny?: boolean;
  login?: string;
}

export interface BrowsedPage {
  url: string;
  status: number;
  text: string;
}

export async function browseAuthorization(
  startUrl: string,
  options: AuthorizationBrowsing = {},
): Promise<BrowsedPage> {
  const jars = new Map<string, Map<string, string>>();
  let url = startUrl;
  let form: string | undefined;
  for (let hop = 0; hop < 20; hop++) {
    if (options.stopAt !== undefined && url.startsWith(options.stopAt)) {
      return { url, status: 0, text: "" };
    }
    const origin = new URL(url).origin;
    const jar = jars.get(origin) ?? new Map<string, string>();
    jars.set(origin, jar);
    const response = await fetch(url, {
      method: form === undefined ? "GET" : "POST",
      redirect: "manual",
      headers: {
        accept: "text/html",
        cookie: [...jar].map(([name, value]) => `${name}=${value}`).join("; "),
        ...(form !== undefined ? { "content-type": "application/x-www-form-urlencoded" } : {}),
      },
      ...(form !== undefined ? { body: form } : {}),
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ""] = line.split(";");
      const index = pair.indexOf("=");
      jar.set(pair.slice(0, index), pair.slice(index + 1));
    }
    form = undefined;
    const location = response.headers.get("location");
    if (location !== null && response.status >= 300 && response.status < 400) {
      await response.body?.cancel();
      url = new URL(location, url).toString();
      continue;
    }
    const text = await response.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(text)?.[1];
    const prompt = /name="prompt" value="([^"]+)"/.exec(text)?.[1];
    if (response.status !== 200 || action === undefined || prompt === undefined) {
      return { url, status: response.status, text };
    }
    const submit = new URL(action, url);
    if (options.deny && prompt === "consent") {
      url = new URL(`${submit.pathname}/abort`, submit).toString();
      continue;
    }
    url = submit.toString();
    form =
      prompt === "login"
        ? new URLSearchParams({
            prompt,
            login: options.login ?? "alice",
            password: "any",
          }).toString()
        : new URLSearchParams({ prompt }).toString();
  }
  throw new Error(`more than 20 redirects from ${startUrl}`);
}
