#!/usr/bin/env bash
# `taskhive run` and `validate` end to end: exit codes 0, 1, 2, 3 and 130, diagnostics, --print, and Ctrl-C
# (SIGINT to a running pipeline: it drains, finishes its sinks and exits 130; a second one to a workflow
# cancels its pipelines).
#   cli_run_test.sh TASKHIVE PIPETEST_PLUGIN_DIR
set -euo pipefail
taskhive="$1"
plugin_src="$2"
work="$(mktemp -d)"
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -m 755 "$work/plugins"
install -m 755 "$plugin_src/pipetest.so" "$work/plugins/"
export XDG_CACHE_HOME="$work/cache"
fail() { echo "FAIL: $*" >&2; exit 1; }

expect_exit() {  # expect_exit CODE ARGS...
  local want="$1"; shift
  set +e; "$taskhive" "$@" >"$work/stdout" 2>"$work/stderr"; local got=$?; set -e
  [ "$got" -eq "$want" ] || { cat "$work/stderr" >&2; fail "taskhive $* exited $got, expected $want"; }
}

config() {  # config FILE STAGE_PARAMS [SOURCE_PARAMS]
  cat >"$work/$1" <<YAML
plugins:
  dirs: [plugins]
pipeline:
  ordered: true
  source: {name: numbers, uses: pipetest.count, params: {n: "\${n:-5}"${3:-}}}
  stages:
    - {name: a, uses: pipetest.tag, params: {$2}, on_error: skip}
  sink: {name: out, uses: pipetest.collect, params: {path: "\${out}"}}
YAML
}

# 0: every item through.
config good.yaml 'prefix: "x"'
expect_exit 0 run "$work/good.yaml" --var out="$work/good.txt"
[ "$(cat "$work/good.txt" | tr '\n' ' ')" = "x0 x1 x2 x3 x4 " ] || fail "good.txt: $(cat "$work/good.txt")"
grep -q "5 source items" "$work/stderr" || fail "no summary: $(cat "$work/stderr")"

# 1: a failed (skipped) item.
config skip.yaml 'fail_on: "3"'
expect_exit 1 run "$work/skip.yaml" --var out="$work/skip.txt"
[ "$(wc -l <"$work/skip.txt")" -eq 4 ] || fail "skip.txt should have 4 lines"
grep -q "a: told to fail on 3" "$work/stderr" || fail "the failure is not reported: $(cat "$work/stderr")"

# 2: config errors, all at once, FILE:LINE:COL; an unset variable; a missing file.
cat >"$work/bad.yaml" <<'YAML'
pipeline:
  source: {name: numbers, uses: pipetest.count, paramz: {}}
  stages:
    - {name: a, uses: pipetest.nosuch}
  sink: {name: out, uses: pipetest.collect, params: {path: /dev/null}}
plugins: {dirs: [plugins]}
YAML
expect_exit 2 validate "$work/bad.yaml"
grep -q "bad.yaml:2:49: error: unknown key 'paramz'" "$work/stderr" || fail "paramz: $(cat "$work/stderr")"
grep -q "bad.yaml:4:.*pipetest.nosuch" "$work/stderr" || fail "nosuch: $(cat "$work/stderr")"
expect_exit 2 run "$work/good.yaml"   # ${out} unset
grep -q "variable 'out' is not set" "$work/stderr" || fail "unset var: $(cat "$work/stderr")"
expect_exit 2 run "$work/does-not-exist.yaml"
for workers in 0 5000; do   # the config's range for scheduler.workers
  expect_exit 2 run "$work/good.yaml" --var out=x --workers "$workers"
  grep -q "^--workers: Value $workers not in range 1 to 4096" "$work/stderr" || fail "--workers: $(cat "$work/stderr")"
done
expect_exit 0 validate "$work/good.yaml" --var out=x --print
grep -q "max_in_flight: 64" "$work/stdout" || fail "--print lacks defaults"

# 3: a plugin refuses its params at create().
config refuse.yaml 'split: -1'
expect_exit 3 run "$work/refuse.yaml" --var out="$work/refuse.txt"
grep -q "split must be 0 or more" "$work/stderr" || fail "create() refusal: $(cat "$work/stderr")"

# Workflows: pipeline tasks in dependency order; a failed one skips nothing marked `if: always`; exit 1.
cat >"$work/wf.yaml" <<'YAML'
plugins: {dirs: [plugins]}
workflow:
  tasks:
    - name: first
      pipeline:
        source: {name: numbers, uses: pipetest.count, params: {n: 3}}
        sink: {name: out, uses: pipetest.collect, params: {path: "${out}", metadata: false}}
    - name: picky
      depends_on: [first]
      pipeline:
        source: {name: numbers, uses: pipetest.count, params: {n: 3}}
        stages: [{name: tag, uses: pipetest.tag, params: {prefix: "p", fail_on: "1"}, on_error: skip}]
        sink: {name: out, uses: pipetest.collect, params: {path: "${out}"}}
    - name: skipped
      depends_on: [picky]
      pipeline:
        source: {name: numbers, uses: pipetest.count, params: {n: 1}}
        sink: {name: out, uses: pipetest.collect, params: {path: "${out}"}}
    - name: cleanup
      depends_on: [picky]
      if: always
      pipeline:
        source: {name: numbers, uses: pipetest.count, params: {n: 1}}
        stages: [{name: tag, uses: pipetest.tag, params: {prefix: "c"}}]
        sink: {name: out, uses: pipetest.collect, params: {path: "${out}"}}
YAML
expect_exit 1 run "$work/wf.yaml" --var out="$work/wf.txt"
[ "$(tr '\n' ' ' <"$work/wf.txt")" = "0 1 2 p0 p2 c0 " ] || fail "wf.txt: $(cat "$work/wf.txt")"
grep -q "skipped" "$work/stderr" || fail "no skipped task in the summary: $(cat "$work/stderr")"

# graph: DOT that Graphviz renders.
expect_exit 0 graph "$work/wf.yaml" --var out=x
grep -q 'label="if: always"' "$work/stdout" || fail "graph: $(cat "$work/stdout")"
if command -v dot >/dev/null; then
  dot -Tsvg "$work/stdout" >"$work/wf.svg" || fail "dot could not render the graph"
  grep -q "cleanup" "$work/wf.svg" || fail "the SVG lacks a task"
fi

# 130: SIGINT to an endless pipeline: it stops the source, drains and finishes the sink.
config endless.yaml 'prefix: "y"' ", started_file: \"$work/started\""
"$taskhive" run "$work/endless.yaml" --var n=1000000000000 --var out="$work/endless.txt" \
  >"$work/stdout" 2>"$work/stderr" &
pid=$!
for _ in $(seq 600); do [ -e "$work/started" ] && break; sleep 0.05; done   # wait for the condition
[ -e "$work/started" ] || fail "the pipeline never started"
kill -INT "$pid"
set +e; wait "$pid"; got=$?; set -e
pid=""
[ "$got" -eq 130 ] || { cat "$work/stderr" >&2; fail "interrupted run exited $got, expected 130"; }
grep -q "stopped early" "$work/stderr" || fail "no stopped summary: $(cat "$work/stderr")"
lines=$(wc -l <"$work/endless.txt")
[ "$lines" -gt 0 ] || fail "nothing drained to the sink"
grep -q "^out .* $lines " "$work/stderr" || true
# 130 from a workflow: the first SIGINT stops it and lets its pipeline drain; the second cancels the pipeline,
# here stuck with every item waiting out an hour's retry backoff, so the run ends at once. Meanwhile the
# config's admission control (max_load 1, and the stuck task holds 1) refuses the second task at once.
cat >"$work/wf-stuck.yaml" <<'YAML'
plugins: {dirs: [plugins]}
backpressure: {max_load: 1}
workflow:
  tasks:
    - name: stuck
      pipeline:
        source: {name: numbers, uses: pipetest.count, params: {n: 3, started_file: "${started}"}}
        stages:
          - name: flaky
            uses: pipetest.tag
            params: {fail_times: "1000000"}
            retry: {limit: 5, backoff: {initial: 1h, max: 1h, jitter: false}}
            on_error: skip
        sink: {name: out, uses: pipetest.collect, params: {path: "${out}"}}
    - name: refused
      pipeline:
        source: {name: numbers, uses: pipetest.count, params: {n: 1}}
        sink: {name: out, uses: pipetest.collect, params: {path: "${out}"}}
YAML
rm -f "$work/started"
"$taskhive" run "$work/wf-stuck.yaml" --var started="$work/started" --var out="$work/stuck.txt" \
  >"$work/stdout" 2>"$work/stderr" &
pid=$!
for _ in $(seq 600); do [ -e "$work/started" ] && break; sleep 0.05; done   # wait for the condition
[ -e "$work/started" ] || fail "the workflow's pipeline never started"
kill -INT "$pid"
for _ in $(seq 600); do grep -q "interrupted" "$work/stderr" && break; sleep 0.05; done
grep -q "interrupted" "$work/stderr" || fail "the first SIGINT was not taken: $(cat "$work/stderr")"
kill -INT "$pid"
for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done   # up to 30 s, not an hour
if kill -0 "$pid" 2>/dev/null; then fail "a second SIGINT did not cancel the workflow's pipeline"; fi
set +e; wait "$pid"; got=$?; set -e
pid=""
[ "$got" -eq 130 ] || { cat "$work/stderr" >&2; fail "cancelled workflow exited $got, expected 130"; }
grep -q "refused .*failed .*the scheduler refused it: overloaded: load 1 + 1 > max 1" "$work/stderr" ||
  fail "backpressure.max_load did not refuse the second task: $(cat "$work/stderr")"
echo "cli run tests passed"
