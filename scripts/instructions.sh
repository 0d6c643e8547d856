#!/usr/bin/env bash
# Prints the machine instructions the proxy executes per statement in its
# relay benchmarks (proxy/relay_bench_test.go), counted by valgrind's
# callgrind inside session.answer. Unlike timings, the count does not move
# with a shared or throttled machine: it tells whether a change made the
# statement path do less work, to within a few instructions.
#   scripts/instructions.sh [commit]   with a commit: that commit's count too
set -euo pipefail
cd "$(dirname "$0")/.."

benches=(RelaySmallResult RelaySmallResultInTransaction RelayPreparedInTransaction Relay100Rows)
statements=10000
work=$(mktemp -d)
trap 'git worktree remove --force "$work/before" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# count BINARY BENCH: instructions per statement. GC off and no async
# preemption: both would run runtime work on the goroutine's thread and
# be counted (the benchmarks allocate next to nothing).
count() {
  GOGC=off GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind \
    --toggle-collect='*proxy.(*session).answer' --callgrind-out-file="$work/out" \
    "$1" -test.run '^$' -test.bench "^Benchmark$2\$" -test.benchtime "${statements}x" >/dev/null 2>&1
  local total
  total=$(callgrind_annotate "$work/out" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
  case "$total" in
  '' | . | 0) echo - ;; # no such benchmark in that commit
  *) echo $((total / statements)) ;;
  esac
}

before="${1:-}"
if [ -n "$before" ] && ! git rev-parse -q --verify "$before^{commit}" >/dev/null; then
  echo "instructions: $before is not a commit (a binary?): counting this tree only"
  before=""
fi
"${GO:-go}" test -c -o "$work/now.test" ./proxy
if [ -n "$before" ]; then
  git worktree add -q "$work/before" "$before"
  (cd "$work/before" && "${GO:-go}" test -c -o "$work/before.test" ./proxy)
  printf '%-32s %12s %12s\n' "instructions per statement" "$(git rev-parse --short "$before")" "now"
  for b in "${benches[@]}"; do
    printf '%-32s %12s %12s\n' "$b" "$(count "$work/before.test" "$b")" "$(count "$work/now.test" "$b")"
  done
else
  printf '%-32s %12s\n' "instructions per statement" "now"
  for b in "${benches[@]}"; do
    printf '%-32s %12s\n' "$b" "$(count "$work/now.test" "$b")"
  done
fi
