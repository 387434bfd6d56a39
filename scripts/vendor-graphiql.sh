#!/usr/bin/env bash
# Refreshes the GraphiQL page's assets in internal/graphiql/assets from the
# npm registry, so the page needs no CDN (offline, or behind a strict proxy,
# it would otherwise stay on "Loading…"). Change the pinned versions below,
# run this, run `go test ./internal/graphiql/`, and commit the result.
#
# npm checks each package tarball against the registry's integrity hash; the
# files copied are the built browser bundles the packages ship (GraphiQL's
# UMD build and React's UMD builds), unmodified.
set -euo pipefail

GRAPHIQL_VERSION=4.1.2
REACT_VERSION=18.2.0 # GraphiQL 4's UMD bundle expects React 18's globals

cd "$(dirname "$0")/.."
dest=internal/graphiql/assets
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent \
  "graphiql@$GRAPHIQL_VERSION" "react@$REACT_VERSION" "react-dom@$REACT_VERSION" >/dev/null)
unpack() { mkdir -p "$tmp/$1" && tar -xzf "$tmp/$1-$2.tgz" -C "$tmp/$1" --strip-components=1; }
unpack graphiql "$GRAPHIQL_VERSION"
unpack react "$REACT_VERSION"
unpack react-dom "$REACT_VERSION"

mkdir -p "$dest"
cp "$tmp/graphiql/graphiql.min.js" "$tmp/graphiql/graphiql.min.css" "$dest/"
cp "$tmp/react/umd/react.production.min.js" "$dest/"
cp "$tmp/react-dom/umd/react-dom.production.min.js" "$dest/"
for pkg in graphiql react react-dom; do
  cp "$tmp/$pkg/LICENSE" "$dest/LICENSE-$pkg"
done
cat >"$dest/VERSIONS" <<VERSIONS
graphiql $GRAPHIQL_VERSION
react $REACT_VERSION
react-dom $REACT_VERSION
VERSIONS
echo "vendored graphiql $GRAPHIQL_VERSION, react and react-dom $REACT_VERSION into $dest"
