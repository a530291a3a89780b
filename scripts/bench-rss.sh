#!/usr/bin/env bash
# bench-rss.sh: memory of the running exporter. Starts pve-sim (the 64-node × 5,000-guest "large" scenario) and
# pve-exporter on loopback, scrapes /pve SCRAPES times (default 100), then prints the exporter's VmRSS and
# VmHWM from /proc and the median scrape time. Goal: VmRSS ≤ 64 MB.
#   scripts/bench-rss.sh [bin-dir]        (default bin/, built by `make build`)
# Environment: SCRAPES, SCENARIO (default large), EXPORTER_ARGS (extra pve-exporter flags, e.g.
# --pve.cache-max-age=0 so that every scrape runs a round of API calls), GOMEMLIMIT and GOGC apply to both.
set -euo pipefail

bin=${1:-bin}
scrapes=${SCRAPES:-100}
scenario=${SCENARIO:-large}
work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # url
	for _ in $(seq 1 200); do
		if curl -sf -o /dev/null "$1"; then return 0; fi
		sleep 0.1
	done
	echo "timed out waiting for $1" >&2
	return 1
}

secret=00000000-0000-4000-8000-0000000be4c1
printf '%s\n' "$secret" >"$work/audit-token"
sim_addr=127.0.0.1:$(free_port)
exp_addr=127.0.0.1:$(free_port)

"$bin/pve-sim" --scenario.builtin "$scenario" --web.listen-address "$sim_addr" \
	--audit-token-file "$work/audit-token" --log.level warn >"$work/sim.log" 2>&1 &
pids+=($!)
cat >"$work/pve.yml" <<YAML
default:
  user: root@pam
  token_name: proxbalance-audit
  token_value_file: audit-token
  verify_ssl: false
YAML
# shellcheck disable=SC2086 # EXPORTER_ARGS is a list of flags
"$bin/pve-exporter" --config.file "$work/pve.yml" --web.listen-address "$exp_addr" --log.level warn ${EXPORTER_ARGS:-} \
	>"$work/exporter.log" 2>&1 &
exporter=$!
pids+=("$exporter")

for _ in $(seq 1 200); do
	if curl -sfk -o /dev/null -H "Authorization: PVEAPIToken=root@pam!proxbalance-audit=$secret" "https://$sim_addr/api2/json/version"; then break; fi
	sleep 0.1
done
wait_http "http://$exp_addr/metrics"

url="http://$exp_addr/pve?target=$sim_addr"
: >"$work/times"
for _ in $(seq 1 "$scrapes"); do
	curl -sf --compressed -o /dev/null -w '%{time_total}\n' -H 'X-Prometheus-Scrape-Timeout-Seconds: 30' "$url" >>"$work/times"
done
size=$(curl -sf --compressed -o /dev/null -w '%{size_download}' "$url")

echo "scenario: $scenario; scrapes: $scrapes; exposition: $size bytes"
echo "scrape time median: $(sort -n "$work/times" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)] " s"}')"
grep -E 'VmRSS|VmHWM' "/proc/$exporter/status"
curl -sf "http://$exp_addr/metrics" | grep -E '^pve_exporter_api_request_duration_seconds_count' | awk '{n+=$2} END {print "PVE API calls: " n}'
if [ -n "${SHOW_LOG:-}" ]; then tail -n "$SHOW_LOG" "$work/exporter.log"; fi
if grep -qE 'level=(error|warn)' "$work/exporter.log"; then
	echo "exporter warnings:" >&2
	grep -E 'level=(error|warn)' "$work/exporter.log" | head -5 >&2
fi
