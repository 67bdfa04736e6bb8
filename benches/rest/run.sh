#!/usr/bin/env bash
# REST throughput and latency of `POST /api/v1/product/buy` and `GET /api/v1/products`,
# with wrk (keep-alive connections) against `bourse serve` (durable journal, default
# settings but rate-limit 0) on 127.0.0.1. wrk and the server share this machine's cores.
#
#   bash benches/rest/run.sh [seconds (10)] [connections (32)]
#
# Needs wrk (Debian: apt-get install wrk). The buyer's market orders of 1 share fill against
# one large resting offer, so every request is a whole trade: authentication, an engine query,
# the order through the ring, its group commit, the fill, and the answer.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-32}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -q --locked -p bourse
dir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
target/release/bourse serve --data-dir "$dir/data" --http-addr "127.0.0.1:$port" \
  --rate-limit 0 --feed off --liquidity false 2>"$dir/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
base="http://127.0.0.1:$port/api/v1"
for _ in $(seq 100); do
  curl -sf "$base/health" >/dev/null && break
  sleep 0.1
done
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
account() {
  curl -sf -X PUT "$base/account" -H 'Content-Type: application/json' \
    -d "{\"name\": \"$1\", \"proof\": \"bench\", \"currencyPreference\": \"USD\"}" | json '["token"]'
}
deposit() {
  curl -sf -X PUT "$base/funds" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
    -d "{\"amount\": \"$2\", \"currency\": \"$3\", \"type\": \"upi\", \"requestId\": \"$3-$RANDOM$RANDOM\", \"additionalInformation\": {\"vpa\": \"b@bank\"}}" >/dev/null
}
seller=$(account seller)
buyer=$(account buyer)
deposit "$seller" 100000000 AAPL
deposit "$buyer" 1000000000.00 USD
curl -sf -X POST "$base/product/sell" -H "Authorization: Bearer $seller" -H 'Content-Type: application/json' \
  -d '{"symbol": "AAPL", "quantity": "100000000", "type": "limit", "price": "100.00"}' >/dev/null
cat > "$dir/buy.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"symbol": "AAPL", "quantity": "1", "type": "market"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $buyer"
done = function(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
echo "## POST /api/v1/product/buy (market, 1 share, fills): wrk -t2 -c$connections -d${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$dir/buy.lua" "$base/product/buy"
echo
echo "## GET /api/v1/products (first page of the catalogue): wrk -t2 -c$connections -d${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" --latency "$base/products"
echo
echo "## check: the buyer's trades"
curl -sf "$base/admin/status" >/dev/null 2>&1 || true
curl -sf "$base/funds" -H "Authorization: Bearer $buyer"
echo
