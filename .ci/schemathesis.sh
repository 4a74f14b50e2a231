#!/usr/bin/env bash
# Fuzzes the running server against its own OpenAPI document with schemathesis, every check on,
# bounded and seeded so that a CI run is repeatable. Needs a built binary: $1 (default: the
# debug build `cargo test` leaves behind).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:-target/debug/tokensmith}")
python3 -m pip install --quiet --disable-pip-version-check 'schemathesis==4.32.5' 2>&1 | grep -v "Running pip as the 'root' user" || true

work=$(mktemp -d /tmp/tokensmith-schemathesis.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/clerk.pem" 2>/dev/null
# Every optional feature on, so every documented operation answers for real: Clerk verifies with a
# local PEM (no network), webhooks have a secret, the issuer is the server's URL (OIDC discovery),
# registration is open (with a limit the run's registrations, all from 127.0.0.1, stay under).
export DATABASE_URL="sqlite://$work/st.db?mode=rwc" LISTEN_ADDR="127.0.0.1:$port" RUST_LOG=warn \
       JWT_ISSUER="http://127.0.0.1:$port" \
       ACCESS_TOKEN_LIFETIME=1h CLERK_ISSUER=https://clerk.example.com \
       CLERK_JWT_KEY="$(openssl pkey -in "$work/clerk.pem" -pubout)" CLERK_AUTHORIZED_PARTIES=https://app.example.com \
       CLERK_WEBHOOK_SIGNING_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
       ALLOW_REGISTRATION=true REGISTRATION_LIMIT=100000
# Password reset on, its SMTP server a port nothing listens on: the endpoints answer for real, and
# an unsendable mail must fail no request.
export SMTP_URL=smtp://127.0.0.1:9 EMAIL_FROM=noreply@example.com \
       PASSWORD_RESET_URL="http://127.0.0.1:$port/reset?token={token}"
# alice, whose token the run uses, is a staff superuser, so that every admin operation answers for
# real rather than 403. Others exist so that small ids name users: a staff user, a user in a group,
# and an inactive one (minting tokens for them is 400).
printf 'schemathesis password' | "$binary" user create alice --staff --superuser --password-stdin >/dev/null
printf 'schemathesis password' | "$binary" user create bob --email bob@example.com --password-stdin >/dev/null
printf 'schemathesis password' | "$binary" user create carol --staff --password-stdin >/dev/null
printf 'schemathesis password' | "$binary" user create dave --password-stdin >/dev/null
"$binary" user deactivate dave >/dev/null
"$binary" group create editors >/dev/null
"$binary" group create viewers >/dev/null
"$binary" user add-group bob editors >/dev/null
"$binary" serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
access=$(curl -fs -H 'content-type: application/json' -d '{"username":"alice","password":"schemathesis password"}' \
    "http://127.0.0.1:$port/api/token/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')

status=0
st --config-file .ci/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" --checks all --max-examples "${SCHEMATHESIS_EXAMPLES:-200}" \
    --header "Authorization: Bearer $access" --no-color --generation-deterministic || status=$?
if grep -q '"level":"ERROR"\|panicked' "$work/server.log"; then
    echo "FAIL: the server logged errors during the run:" >&2
    grep '"level":"ERROR"\|panicked' "$work/server.log" | head -20 >&2
    status=1
fi
exit $status
