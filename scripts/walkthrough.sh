#!/usr/bin/env bash
# The README walkthrough as a script: run it against a platform started with `pnpm start`.
# Needs curl and node. KEYWAY (API URL) and KEYWAY_STATE (the .keyway folder) can be overridden.
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

echo "== 7. the audit chain verifies"
api "$OP" GET /v1/audit/verify | json ok
