#!/usr/bin/env bash
# The README walkthrough as a script: run it against a platform started with `pnpm start`.
# Needs curl and node. KEYWAY (API URL) and KEYWAY_STATE (the .keyway folder) can be overridden;
# step 7 starts scripts/demo-upstream.ts on DEMO_PORT (default: a free port) and stops it on exit.
set -euo pipefail
KEYWAY=${KEYWAY:-http://127.0.0.1:8080}
KEYWAY_STATE=${KEYWAY_STATE:-.keyway}
OP=$(cat "$KEYWAY_STATE/operator-token")

# json FIELD.PATH  — reads JSON on stdin and prints one field (no jq needed).
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=process.argv[1].split(".").reduce((o,k)=>o?.[k],JSON.parse(s));console.log(typeof v==="object"?JSON.stringify(v):v)})' "$1"; }
api() { local token=$1 method=$2 path=$3; shift 3; curl -sS --fail-with-body -X "$method" -H "authorization: Bearer $token" -H "content-type: application/json" "$@" "$KEYWAY$path"; }

echo "== 1. the operator creates an organization (its first admin token is shown once)"
ORG=$(api "$OP" POST /v1/operator/organizations -d '{"name":"Acme"}')
TOKEN=$(echo "$ORG" | json adminToken.token)
echo "organization $(echo "$ORG" | json organization.id)"

echo "== 2. the organization sees the enabled targets"
api "$TOKEN" GET /v1/integration/targets | json items | node -pe 'JSON.parse(require("fs").readFileSync(0)).map(t=>t.targetKey).join(" ")'

echo "== 3. a connection to OpenAI with an API key (write-only: never returned)"
CONN=$(api "$TOKEN" POST /v1/integration/connections \
  -d '{"targetKey":"openai","methodId":"api-key","displayName":"OpenAI","secrets":{"apiKey":"sk-walkthrough-not-a-real-key"}}')
CONN_ID=$(echo "$CONN" | json id)
echo "connection $CONN_ID status $(echo "$CONN" | json status)"

echo "== 4. a sandbox profile and its first immutable version binding the connection"
PROFILE=$(api "$TOKEN" POST /v1/sandbox-profiles -d '{"name":"coding-agent"}' | json id)
VERSION=$(api "$TOKEN" POST "/v1/sandbox-profiles/$PROFILE/versions" \
  -d "{\"bindings\":[{\"connectionId\":\"$CONN_ID\",\"kind\":\"agent\",\"config\":{\"model\":\"gpt-5.2-codex\"}}]}")
echo "profile $PROFILE version $(echo "$VERSION" | json version) plan $(echo "$VERSION" | json planDigest)"

echo "== 5. the compiled plan: routes, files and env (no secret in it)"
PLAN=$(api "$TOKEN" GET "/v1/sandbox-profiles/$PROFILE/versions/1/plan")
echo "$PLAN" | json plan.routes | node -pe 'JSON.parse(require("fs").readFileSync(0)).map(r=>r.match.hosts.join(",")+" "+(r.match.pathPrefixes??["/"]).join(",")+" -> "+r.auth.type).join("\n")'
echo "$PLAN" | json plan.files | node -pe 'JSON.parse(require("fs").readFileSync(0)).map(f=>f.root+"/"+f.path).join("\n")'
if echo "$PLAN" | grep -q "sk-walkthrough"; then echo "secret found in plan!"; exit 1; fi

echo "== 6. a sandbox session: token, proxy URL and environment for the sandbox"
SESSION=$(api "$TOKEN" POST /v1/sandbox-sessions -d "{\"profileId\":\"$PROFILE\"}")
echo "session $(echo "$SESSION" | json id) proxy $(echo "$SESSION" | json proxyUrl) expires $(echo "$SESSION" | json tokenExpiresAt)"

echo "== 7. a real request through the egress gateway, to a local demo API"
# The demo API stands in for a provider that wants "Authorization: Bearer <key>". The operator
# adds it as an http-api target, the organization stores the key in a connection, and a sandbox
# holding only its session token calls the API through the gateway, which injects the key.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_KEY=demo-key-walkthrough-not-secret
DEMO_LOG=$(mktemp)
DEMO_API_KEY=$DEMO_KEY "$REPO/node_modules/.bin/tsx" "$REPO/scripts/demo-upstream.ts" --port "${DEMO_PORT:-0}" >"$DEMO_LOG" 2>&1 &
DEMO_PID=$!
trap 'kill "$DEMO_PID" 2>/dev/null || true; rm -f "$DEMO_LOG"' EXIT
for _ in $(seq 300); do grep -q "listening on" "$DEMO_LOG" && break; sleep 0.1; done
DEMO_URL=$(sed -n 's/^demo API listening on //p' "$DEMO_LOG")
if [ -z "$DEMO_URL" ]; then echo "the demo API did not start:" >&2; cat "$DEMO_LOG" >&2; exit 1; fi
api "$OP" POST /v1/operator/targets \
  -d "{\"targetKey\":\"demo-api\",\"variantId\":\"http-api\",\"config\":{\"baseUrl\":\"$DEMO_URL/v1\"}}" >/dev/null
DEMO_CONN=$(api "$TOKEN" POST /v1/integration/connections \
  -d "{\"targetKey\":\"demo-api\",\"methodId\":\"api-key\",\"displayName\":\"Demo API\",\"secrets\":{\"apiKey\":\"$DEMO_KEY\"}}" | json id)
VERSION=$(api "$TOKEN" POST "/v1/sandbox-profiles/$PROFILE/versions" \
  -d "{\"bindings\":[{\"connectionId\":\"$CONN_ID\",\"kind\":\"agent\",\"config\":{\"model\":\"gpt-5.2-codex\"}},{\"connectionId\":\"$DEMO_CONN\",\"kind\":\"connector\",\"config\":{}}]}")
SESSION=$(api "$TOKEN" POST /v1/sandbox-sessions -d "{\"profileId\":\"$PROFILE\"}")
PROXY=$(echo "$SESSION" | json proxyEnv.HTTP_PROXY)
echo "profile version $(echo "$VERSION" | json version), session $(echo "$SESSION" | json id)"
echo "sandbox: curl --proxy \$HTTP_PROXY -H 'authorization: Bearer placeholder' $DEMO_URL/v1/hello"
RESPONSE=$(curl -sS --fail-with-body --proxy "$PROXY" -H "authorization: Bearer placeholder" "$DEMO_URL/v1/hello")
echo "sandbox got: $RESPONSE"
if echo "$RESPONSE" | grep -q "$DEMO_KEY"; then echo "secret reached the sandbox!"; exit 1; fi
echo "the demo API saw: $(grep -m1 "received GET" "$DEMO_LOG")"

echo "== 8. the audit chain verifies"
api "$OP" GET /v1/audit/verify | json ok
