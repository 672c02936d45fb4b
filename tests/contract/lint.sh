#!/usr/bin/env bash
# Lints schemas/openapi.yaml with @redocly/cli as tests/contract/package-lock.json pins it
# (npm ci on first use or when another version is installed). ctest: contract.openapi_lint.
set -euo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$DIR/../.." && pwd)
command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are missing (node >= 20)" >&2; exit 1; }
if ! node -e '
  const d = process.argv[1];
  const want = require(d + "/package-lock.json").packages["node_modules/@redocly/cli"].version;
  const got = require(d + "/node_modules/@redocly/cli/package.json").version;
  process.exit(want === got ? 0 : 1);' "$DIR" 2>/dev/null; then
  npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error >&2
fi
exec "$DIR/node_modules/.bin/redocly" lint --format=stylish "$ROOT/schemas/openapi.yaml"
