#!/usr/bin/env bash
# configs/build-workflow.yaml end to end: a snapshot, then hash / words / compress in parallel, publish, and a
# clean-up under if: always. Checks every output against sha256sum, a word count and zstd -d; then makes
# publish fail and checks that the run exits 1, the failure is reported, and the clean-up still ran.
#   build_workflow_test.sh TASKHIVE PLUGIN_DIR CONFIG_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sample_env.sh" "$@" -- fs hash text compress out

mkdir -p "$work/src/logs" "$work/src/docs"
printf 'the cat saw the dog\nthe end\n' >"$work/src/docs/a.txt"
printf 'error: disk full\nerror: retry\nok\n' >"$work/src/logs/app.log"
printf '' >"$work/src/logs/empty.log"

run() {  # run EXPECTED_EXIT ARGS...
  local want="$1"; shift
  set +e
  "$taskhive" run "$configs/build-workflow.yaml" --var plugin_dir="$work/plugins" --var root="$work/src" "$@" \
    >"$work/stdout" 2>"$work/stderr"
  local got=$?
  set -e
  [ "$got" -eq "$want" ] || { cat "$work/stderr" >&2; fail "exit $got, expected $want"; }
}

# Everything succeeds.
run 0 --var work="$work/w1" --var publish="$work/published.jsonl"
grep -q "workflow succeeded: 6 succeeded" "$work/stderr" || fail "summary: $(cat "$work/stderr")"
[ ! -e "$work/w1/snapshot" ] || fail "the clean-up did not remove the snapshot"
cmp "$work/published.jsonl" "$work/w1/hashes.jsonl" || fail "published != hashes"
python3 - "$work" <<'PY' || fail "hashes differ from sha256sum"
import hashlib, json, os, sys
work = sys.argv[1]
got = {}
for line in open(os.path.join(work, "published.jsonl")):
    record = json.loads(line)
    got[os.path.relpath(record["path"], os.path.join(work, "w1", "snapshot"))] = record["sha256"]
want = {}
for directory, _, files in os.walk(os.path.join(work, "src")):
    for name in files:
        path = os.path.join(directory, name)
        want[os.path.relpath(path, os.path.join(work, "src"))] = hashlib.sha256(open(path, "rb").read()).hexdigest()
assert got == want, (got, want)
PY
[ "$(head -1 "$work/w1/top-words.txt")" = "3 the" ] || fail "top words: $(cat "$work/w1/top-words.txt")"
zstd -q -d -c "$work/w1/logs/logs/app.log.zst" | cmp - "$work/src/logs/app.log" || fail "app.log.zst"
zstd -q -d -c "$work/w1/logs/logs/empty.log.zst" | cmp - "$work/src/logs/empty.log" || fail "empty.log.zst"

# publish fails (a path under a regular file cannot be made, even as root): exit 1, clean-up still runs.
run 1 --var work="$work/w2" --var publish=/dev/null/hashes.jsonl
grep -Eq "^publish +failed" "$work/stderr" || fail "publish should fail: $(cat "$work/stderr")"
grep -Eq "^clean-up +succeeded" "$work/stderr" || fail "clean-up should run: $(cat "$work/stderr")"
[ ! -e "$work/w2/snapshot" ] || fail "the clean-up did not remove the snapshot after a failure"

# The DAG renders.
"$taskhive" graph "$configs/build-workflow.yaml" --var work=w --var publish=p >"$work/wf.dot"
if command -v dot >/dev/null; then dot -Tsvg "$work/wf.dot" >/dev/null || fail "dot cannot render the workflow"; fi
echo "build-workflow passed"
