#!/usr/bin/env bash
# configs/compress-logs.yaml end to end: every *.log under a generated tree (and nothing else) becomes
# OUT_DIR/RELATIVE.log.zst, and `zstd -d` restores each byte for byte: nested directories, a name with
# spaces, a name that is not UTF-8, an empty log, and a 6 MB log (many of zstd's input chunks; random bytes
# and text). No temporary file is left behind; the report has one JSON line per log with its size and
# compressed size; a second run over existing outputs replaces them; without root the whole path is kept; a
# level outside zstd's range is refused at create() (exit 3).
#   compress_logs_test.sh TASKHIVE PLUGIN_DIR CONFIG_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sample_env.sh" "$@" -- fs compress out
command -v zstd >/dev/null || fail "zstd is not installed (scripts/setup installs it)"

root="$work/logs"
out="$work/out"
mkdir -p "$root/app/2024" "$root/db" "$root/dir with space"
printf 'started\nstopped\n' >"$root/app/app.log"
awk 'BEGIN { for (i = 0; i < 20000; i++) print "2024-01-01T00:00:" i " INFO request " i " served" }' \
  >"$root/app/2024/big.log"
head -c 4000000 /dev/urandom >>"$root/app/2024/big.log"
: >"$root/db/empty.log"
printf 'no newline' >"$root/dir with space/my file.log"
printf 'latin-1\n' >"$root/db/caf"$'\xe9'".log"   # not UTF-8: reported as path_base64 and output_base64
printf 'not a log\n' >"$root/app/notes.txt"
printf 'rotated\n' >"$root/app/app.log.1"

run() {
  "$taskhive" run "$configs/compress-logs.yaml" --var plugin_dir="$work/plugins" --var root="$root" \
    --var out_dir="$out" "$@" 2>"$work/err"
}
verify() {
  (cd "$root" && find . -type f -name '*.log' | sort) >"$work/want"
  (cd "$out" && find . -type f | sort) >"$work/got"
  sed 's/$/.zst/' "$work/want" | cmp -s - "$work/got" ||
    { diff <(sed 's/$/.zst/' "$work/want") "$work/got" >&2; fail "out_dir holds other than the logs' .zst"; }
  while IFS= read -r f; do
    zstd -q -d -c "$out/$f.zst" | cmp -s - "$root/$f" || fail "$f: zstd -d does not restore it"
  done <"$work/want"
}

run --var report="$work/report.jsonl" || { cat "$work/err" >&2; fail "run failed"; }
verify
[ "$(wc -l <"$work/report.jsonl")" -eq 5 ] || fail "not 5 report lines: $(cat "$work/report.jsonl")"
python3 - "$work/report.jsonl" <<'PY' || fail "the report's sizes are wrong"
import base64, json, os, sys
def raw(r, key):
    return r[key].encode() if key in r else base64.b64decode(r[key + "_base64"])
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert r["size"] == os.path.getsize(raw(r, "path")), r   # JSON numbers (numbers: size,compressed_size)
    assert r["compressed_size"] == os.path.getsize(raw(r, "output")), r
    assert raw(r, "output").endswith(b".log.zst"), r
PY
echo "ok: 5 logs compressed and restored"

# Again, at another level, over the existing outputs: they are replaced (renamed over), still exactly right.
run --var level=19 >/dev/null || { cat "$work/err" >&2; fail "second run failed"; }
verify
echo "ok: a second run replaces the outputs"

# Without root, the whole path is kept, made relative: OUT_DIR/ROOT-WITHOUT-LEADING-SLASH/app/app.log.zst.
cat >"$work/noroot.yaml" <<YAML
plugins: {dirs: ["$work/plugins"]}
pipeline:
  source: {name: logs, uses: fs.walk, params: {root: "$root/app", include: "app.log"}}
  stages:
    - {name: zstd, uses: compress.zstd, params: {out_dir: "$work/noroot"}}
  sink: {name: report, uses: out.summary}
YAML
"$taskhive" run "$work/noroot.yaml" >/dev/null 2>"$work/err" ||
  { cat "$work/err" >&2; fail "noroot: run failed"; }
zstd -q -d -c "$work/noroot/${root#/}/app/app.log.zst" | cmp -s - "$root/app/app.log" ||
  fail "without root: not at out_dir/${root#/}/app/app.log.zst"
echo "ok: without root, the path is kept under out_dir"

set +e
run --var level=99 >/dev/null
rc=$?
set -e
[ "$rc" -eq 3 ] || { cat "$work/err" >&2; fail "level 99 exited $rc, not 3"; }
grep -q "level must be an integer from .* to 22 (got 99)" "$work/err" || fail "no message for level 99: $(cat "$work/err")"
set +e
run --var level=99999999999 >/dev/null
rc=$?
set -e
[ "$rc" -eq 3 ] || { cat "$work/err" >&2; fail "level 99999999999 exited $rc, not 3"; }
grep -q "level must be an integer from .* to 22 (got 99999999999)" "$work/err" ||
  fail "no message for a level past int: $(cat "$work/err")"
echo "compress_logs_test: all passed"
