#!/usr/bin/env bash
# API fuzzing: schemathesis (pinned below) against a real keyward's /openapi.json, with a
# real HS256 JWT and a real API key. Fails on any 5xx and on any response the OpenAPI
# document does not describe (status, content type, headers, body schema).
#
#   fuzz/api/run.sh                 # the CI run: about a minute
#   MAX_EXAMPLES=500 fuzz/api/run.sh  # a longer one
#   EXTRA_ARGS="--report har --report-dir /tmp/st" fuzz/api/run.sh  # every request and answer
#
# Needs Python 3 (a venv with schemathesis is made under target/) and cargo; nothing else.
set -euo pipefail
cd "$(dirname "$0")/../.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${MAX_EXAMPLES:-40}
VENV=${SCHEMATHESIS_VENV:-target/schemathesis-venv}

if [[ ! -x "$VENV/bin/schemathesis" ]] ||
    [[ "$("$VENV/bin/schemathesis" --version)" != *"$SCHEMATHESIS_VERSION"* ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build --locked --quiet --bin keyward
BIN=$(realpath "${CARGO_TARGET_DIR:-target}/debug/keyward")

WORK=$(mktemp -d)
echo "work dir: $WORK" >&2
SERVER_PID=
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/tenants/acme" "$WORK/tenants/globex"
cp tenants/acme/security.yml "$WORK/tenants/acme/security.yml"
# In git mode (a local bare remote), so the history route is fuzzed too.
git init --quiet --bare -b main "$WORK/origin.git"
git -C "$WORK" init --quiet -b main
git -C "$WORK" remote add origin "$WORK/origin.git"
printf 'state/\nschemathesis.toml\nserver.log\norigin.git/\n' > "$WORK/.gitignore"
git -C "$WORK" add .gitignore tenants
git -C "$WORK" -c user.email=fuzz@example.com -c user.name=fuzz commit --quiet -m seed
git -C "$WORK" push --quiet origin main
SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

(cd "$WORK" && KEYWARD_LISTEN="127.0.0.1:$PORT" KEYWARD_AUTH__HS256_SECRET="$SECRET" \
    KEYWARD_GIT__ENABLED=true \
    KEYWARD_LOG_FORMAT=json RUST_LOG=warn exec "$BIN" > "$WORK/server.log" 2>&1) &
SERVER_PID=$!
JWT=$(python3 fuzz/api/mint_jwt.py "$SECRET" acme "tenant.apiKey:read tenant.apiKey:write")
# Waits for /readyz, then creates the key updates are fuzzed on and the API key the verify
# routes are fuzzed with.
API_KEY=$(python3 - "$BASE" "$JWT" <<'PY'
import json, sys, time, urllib.request
base, jwt = sys.argv[1:3]
for _ in range(300):
    try:
        urllib.request.urlopen(f"{base}/readyz", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
def create(body):
    req = urllib.request.Request(
        f"{base}/api/acme/admin/apiKeys", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {jwt}", "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=10))["token"]
create({"name": "fuzzed"})
print(create({"name": "schemathesis", "permissions": ["orders:read", "tenant.apiKey:read"]}))
PY
)

cat > "$WORK/schemathesis.toml" <<TOML
[auth.openapi.bearer]
bearer = "$JWT"

[auth.openapi.apiKey]
api_key = "$API_KEY"

# Most requests go to the tenant the credentials are for; the rest of the path is fuzzed.
[parameters]
"path.tenantId" = "acme"

# Schema-valid requests may still be refused for reasons JSON Schema cannot say: a stale
# If-Match (412) and expiresAt in the past (422). Everything else must be accepted.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", 401, 403, 404, 409, 412, 422]

[generation]
max-examples = $MAX_EXAMPLES

# Updates go to a key that exists: with made-up names nearly every generated update was a
# 404, and the update path went unfuzzed.
[[operations]]
include-path = "/api/{tenantId}/admin/apiKeys/{keyName}"
include-method = "PUT"
parameters = { "path.keyName" = "fuzzed" }

# A token's checksum is a rule JSON Schema cannot state: a made-up token of the documented
# shape is refused 400 on `token`, as the document says.
[[operations]]
include-name = "POST /api/{tenantId}/admin/apiKeys/lookup"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404]

# A list's cursor is one the server made for that query's sort: any other string, however
# well it fits the schema, is a 400 naming it.
[[operations]]
include-operation-id = "listApiKeys"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404]
TOML

status=0
"$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.json" \
    --checks all --workers 2 --seed "${SEED:-1}" --no-color ${EXTRA_ARGS:-} || status=$?

# actix-http logs malformed requests (bad header bytes) at ERROR under its own target.
if grep '"level":"ERROR"' "$WORK/server.log" | grep -q '"target":"keyward'; then
    echo "keyward logged errors:" >&2
    grep '"level":"ERROR"' "$WORK/server.log" >&2
    status=1
fi
if grep -qF "$API_KEY" "$WORK/server.log" || grep -qF "$JWT" "$WORK/server.log"; then
    echo "keyward logged a credential" >&2
    status=1
fi
exit $status
