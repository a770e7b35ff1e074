#!/usr/bin/env bash
# `npm test`: installs what the tests need, type-checks, builds, and runs every test file
# with node's test runner (Node 20's --test has no globbing, so the list is explicit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
npx tsc -p tsconfig.test.json   # strict type check of src, tests and benchmarks
npm run -s lint:layers           # import rules of src/ (.dependency-cruiser.cjs: layers, no cycles, SDK only in store/s3/)
npm run -s lint                  # Biome: lint rules and formatting (biome.json); `npm run format` fixes what it can
mapfile -t files < <(find test -name '*.test.ts' | sort)
if ((${#files[@]} == 0)); then echo "error: no test files found" >&2; exit 1; fi
exec node --import tsx --test --test-concurrency=2 --test-timeout=600000 "${files[@]}"
