#!/usr/bin/env bash
# bench-rss.sh: speed and memory of the running exporter. Starts pve-sim (the 64-node × 5,000-guest "large"
# scenario) on loopback, then runs pve-exporter twice against it, one after the other: "cached" with the
# default --pve.cache-max-age (scrapes within 5 s of the last inventory reuse it, as an HA Prometheus pair and
# the balancer do) and "uncached" with --pve.cache-max-age=0 (every scrape runs its own round of PVE API calls,
# the steady state of a single Prometheus scraping every 15 s or more). Each run scrapes /pve SCRAPES times
# (default 100) back to back after one untimed first scrape (which reads every guest config) and prints the
# median and 90th percentile scrape time, the exporter's VmRSS and VmHWM from /proc and the PVE API calls of
# the timed scrapes. Goals: ≤ 250 ms per scrape, VmRSS ≤ 64 MB, ≤ 1 + N calls.
#   scripts/bench-rss.sh [bin-dir]        (default bin/, built by `make build`)
# Environment: SCRAPES, SCENARIO (default large), MODES (default "cached uncached"), EXPORTER_ARGS (extra
# pve-exporter flags for both runs), GOMEMLIMIT and GOGC (apply to both binaries; without GOGC the exporter
# sets GC percent 50 itself).
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
for _ in $(seq 1 200); do
	if curl -sfk -o /dev/null -H "Authorization: PVEAPIToken=root@pam!proxbalance-audit=$secret" "https://$sim_addr/api2/json/version"; then break; fi
	sleep 0.1
done

api_calls() { # exporter address: PVE API requests the exporter made so far
	curl -sf "http://$1/metrics" | awk '/^pve_exporter_api_request_duration_seconds_count/ {n += $2} END {print n + 0}'
}

api_calls_by_endpoint() { # exporter address: "endpoint count" lines
	curl -sf "http://$1/metrics" | sed -n 's/^pve_exporter_api_request_duration_seconds_count{endpoint="\([^"]*\)"} \(.*\)$/\1 \2/p'
}

run() { # mode, extra pve-exporter flags...
	local mode=$1
	shift
	local exp_addr log
	log=$work/exporter-$mode.log
	exp_addr=127.0.0.1:$(free_port)
	# shellcheck disable=SC2086 # EXPORTER_ARGS is a list of flags
	"$bin/pve-exporter" --config.file "$work/pve.yml" --web.listen-address "$exp_addr" --log.level warn \
		${EXPORTER_ARGS:-} "$@" >"$log" 2>&1 &
	local exporter=$!
	pids+=("$exporter")
	wait_http "http://$exp_addr/metrics"

	local url="http://$exp_addr/pve?target=$sim_addr" times=$work/times-$mode warm
	# The first scrape reads every guest config; the steady state after it is what the goals are about.
	curl -sf --compressed -o /dev/null -H 'X-Prometheus-Scrape-Timeout-Seconds: 60' "$url"
	warm=$(api_calls "$exp_addr")
	api_calls_by_endpoint "$exp_addr" >"$work/calls-warm-$mode"
	: >"$times"
	for _ in $(seq 1 "$scrapes"); do
		curl -sf --compressed -o /dev/null -w '%{time_total}\n' -H 'X-Prometheus-Scrape-Timeout-Seconds: 30' "$url" >>"$times"
	done
	local rss hwm calls size
	rss=$(awk '/^VmRSS/ {print $2 / 1024 " MB"}' "/proc/$exporter/status")
	hwm=$(awk '/^VmHWM/ {print $2 / 1024 " MB"}' "/proc/$exporter/status")
	calls=$(($(api_calls "$exp_addr") - warm))
	api_calls_by_endpoint "$exp_addr" >"$work/calls-end-$mode"
	size=$(curl -sf --compressed -o /dev/null -w '%{size_download}' "$url")

	echo "== $mode (${*:-default flags}): scenario $scenario, $scrapes scrapes, exposition $size bytes"
	sort -n "$times" | awk '{a[NR] = $1} END {printf "scrape time: median %s s, p90 %s s, max %s s\n", a[int((NR + 1) / 2)], a[int(NR * 0.9 + 0.5)], a[NR]}'
	echo "exporter VmRSS after 1 + $scrapes scrapes: $rss (VmHWM $hwm)"
	echo "PVE API calls after the first scrape: $calls for $scrapes scrapes ($(awk -v c="$calls" -v n="$scrapes" 'BEGIN {printf "%.1f", c / n}') per scrape)"
	awk -v n="$scrapes" 'NR == FNR {warm[$1] = $2; next}
		{d = $2 - warm[$1]; if (d > 0) printf "  %s %.2f per scrape\n", $1, d / n}' "$work/calls-warm-$mode" "$work/calls-end-$mode"
	if [ -n "${SHOW_LOG:-}" ]; then tail -n "$SHOW_LOG" "$log"; fi
	if grep -qE 'level=(error|warn)' "$log"; then
		echo "exporter warnings:" >&2
		grep -E 'level=(error|warn)' "$log" | head -5 >&2
	fi
	kill "$exporter"
	wait "$exporter" 2>/dev/null || true
}

for mode in ${MODES:-cached uncached}; do
	case $mode in
	cached) run cached ;; # default --pve.cache-max-age
	uncached) run uncached --pve.cache-max-age=0 ;;
	*)
		echo "unknown mode $mode (want cached or uncached)" >&2
		exit 2
		;;
	esac
done
