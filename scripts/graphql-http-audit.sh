#!/usr/bin/env bash
# Audits a running Tollgate against the GraphQL over HTTP specification with
# graphql-http's serverAudits (the reference implementation's own checks).
#
#   scripts/graphql-http-audit.sh [URL]
#
# URL defaults to http://localhost:8080/graphql. The token is $TOLLGATE_TOKEN,
# or one minted for the organisation "graphql-http-audit" with `go run .
# token` (which needs the same JWT_SECRET and data directory as the server).
# Needs node >= 18 and npm; the packages are installed, at pinned versions,
# into a temporary directory that is removed afterwards. Exits 1 when a MUST
# fails; SHOULD warnings are printed.
set -euo pipefail

GRAPHQL_HTTP_VERSION=1.23.1
GRAPHQL_VERSION=16.15.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
url="${1:-http://localhost:8080/graphql}"
token="${TOLLGATE_TOKEN:-}"
if [[ -z "$token" ]]; then
  token="$(cd "$here/.." && go run . token graphql-http-audit)"
fi

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cp "$here/graphql-http-audit.mjs" "$dir/"
(cd "$dir" && npm init -y >/dev/null &&
  npm install --silent --no-audit --no-fund \
    "graphql-http@$GRAPHQL_HTTP_VERSION" "graphql@$GRAPHQL_VERSION" >/dev/null)
AUDIT_URL="$url" AUDIT_TOKEN="$token" node "$dir/graphql-http-audit.mjs"
