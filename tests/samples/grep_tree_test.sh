#!/usr/bin/env bash
# configs/grep-tree.yaml end to end: the same matches as `grep -rn` (sorted, since grep walks in directory
# order), as PATH:LINE:TEXT, on a generated tree: several files and directories, matching and non-matching
# lines, a file name that is not UTF-8, a last line without a newline, an empty file, CRLF line ends (the
# '\r' stays part of the line, as for grep), colons in lines, a line longer than text.grep's 256 KiB chunk,
# and a 3 MB file whose matches fall on every side of the chunk boundaries (line numbers counted across
# chunks). Patterns: a plain word, an anchored and an alternation pattern (against grep -E), a literal with
# regex characters (grep -F), -i, several patterns on lines of their own; a root that is a symbolic link. Also text.lines then text.grep on line
# items, and a pattern RE2 refuses.
#   grep_tree_test.sh TASKHIVE PLUGIN_DIR CONFIG_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sample_env.sh" "$@" -- fs text

root="$work/tree"
mkdir -p "$root/src/deep/er" "$root/docs" "$root/with space"
printf 'alpha foo\nbeta\nfoo gamma foo\n\nno match here\n' >"$root/src/a.txt"
printf 'first line\nlast foo without newline' >"$root/src/no-newline.txt"
: >"$root/src/empty.txt"
printf 'foo\r\nbar\r\nfoo end\r\n' >"$root/docs/crlf.txt"
printf 'key: foo: value\nFOO upper\nFoo mixed\n' >"$root/with space/colons.txt"
printf 'nothing\nto see\n' >"$root/src/deep/er/none.txt"
printf 'foo in a Latin-1 name\n' >"$root/docs/caf"$'\xe9'".txt"   # not UTF-8: fs.walk gives path_base64
printf 'a+b(c) literal\na+b(c)? twice a+b(c)\nab c\n' >"$root/docs/regex-chars.txt"
{ printf 'start\n'; head -c 300000 /dev/zero | tr '\0' 'x'; printf ' foo long line\nafter foo\n'; } \
  >"$root/src/deep/long-line.txt"
# 3 MB of numbered lines, every 7th a match, so matches land before, on and after each 256 KiB boundary.
awk 'BEGIN { for (i = 1; i <= 200000; i++) print (i % 7 == 0 ? "line " i " foo" : "line " i " bar") }' \
  >"$root/src/deep/er/big.txt"

check() {  # check NAME GREP_ARGS... -- TASKHIVE_VARS...
  local name="$1"; shift
  local grep_args=()
  while [ "$1" != "--" ]; do grep_args+=("$1"); shift; done
  shift
  set +e
  grep -rn "${grep_args[@]}" "$root" | sort >"$work/$name.want"
  set -e
  "$taskhive" run "$configs/grep-tree.yaml" --var plugin_dir="$work/plugins" --var root="$root" "$@" \
    --var out="$work/$name.out" 2>"$work/$name.err" ||
    { cat "$work/$name.err" >&2; fail "$name: run failed"; }
  sort "$work/$name.out" >"$work/$name.got"
  [ -s "$work/$name.want" ] || fail "$name: grep found nothing: a useless case"
  cmp -s "$work/$name.want" "$work/$name.got" ||
    { diff "$work/$name.want" "$work/$name.got" | head -20 >&2; fail "$name: differs from grep -rn"; }
  echo "ok: $name ($(wc -l <"$work/$name.want") lines)"
}

check plain foo -- --var pattern=foo
check anchored -E '^foo|foo$' -- --var pattern='^foo|foo$'
check alternation -E 'gamma|upper|b(a|e)r' -- --var pattern='gamma|upper|b(a|e)r'
check fixed -F 'a+b(c)' -- --var pattern='a+b(c)' --var fixed=true
check ignore_case -i foo -- --var pattern=foo --var ignore_case=true
# A newline separates patterns, as for grep: a line matching any of them matches.
check several -E -e foo -e 'gamma|upper' -- --var pattern=$'foo\ngamma|upper'
check several_fixed -F -e 'a+b(c)' -e upper -- --var pattern=$'a+b(c)\nupper' --var fixed=true

# A root that is a symbolic link to the tree is walked, as grep -r walks a link named on its command line.
ln -s "$root" "$work/tree-link"
grep -rn foo "$work/tree-link" | sort >"$work/link.want"
"$taskhive" run "$configs/grep-tree.yaml" --var plugin_dir="$work/plugins" --var root="$work/tree-link" \
  --var pattern=foo --var out="$work/link.out" 2>"$work/link.err" ||
  { cat "$work/link.err" >&2; fail "a symlinked root: run failed"; }
sort "$work/link.out" | cmp -s "$work/link.want" - || fail "a symlinked root differs from grep -rn"
echo "ok: a symlinked root"

# The walk's order by default: the same output, in the same order, every run.
"$taskhive" run "$configs/grep-tree.yaml" --var plugin_dir="$work/plugins" --var root="$root" \
  --var pattern=foo --var out="$work/again.out" 2>/dev/null
cmp -s "$work/plain.out" "$work/again.out" || fail "two runs gave different orders"

# The same through text.lines and text.grep on line items (input auto: items with metadata "line").
cat >"$work/lines.yaml" <<YAML
plugins: {dirs: ["$work/plugins"]}
pipeline:
  source: {name: files, uses: fs.walk, params: {root: "$root"}}
  stages:
    - {name: lines, uses: text.lines, concurrency: unlimited}
    - {name: grep, uses: text.grep, params: {pattern: "\${pattern}", format: grep}, concurrency: unlimited}
  sink: {name: out, uses: text.write, params: {path: "$work/lines.out"}}
YAML
"$taskhive" run "$work/lines.yaml" --var pattern=foo 2>"$work/lines.err" ||
  { cat "$work/lines.err" >&2; fail "lines.yaml: run failed"; }
sort "$work/lines.out" | cmp -s "$work/plain.want" - || fail "text.lines | text.grep differs from grep -rn"
echo "ok: text.lines then text.grep"

# A pattern RE2 refuses is a config-time error (exit 3: the stage's create() refuses it), not a crash.
set +e
"$taskhive" run "$configs/grep-tree.yaml" --var plugin_dir="$work/plugins" --var root="$root" \
  --var pattern='(' --var out="$work/bad.out" 2>"$work/bad.err"
rc=$?
set -e
[ "$rc" -eq 3 ] || { cat "$work/bad.err" >&2; fail "a bad pattern exited $rc, not 3"; }
grep -q "bad pattern" "$work/bad.err" || fail "no message for a bad pattern: $(cat "$work/bad.err")"
# Each line of a pattern must be one on its own, as for grep: "(a" and "b)" do not make "(a)|(b)" valid.
set +e
"$taskhive" run "$configs/grep-tree.yaml" --var plugin_dir="$work/plugins" --var root="$root" \
  --var pattern=$'(foo\nbar)' --var out="$work/bad2.out" 2>"$work/bad2.err"
rc=$?
set -e
[ "$rc" -eq 3 ] || { cat "$work/bad2.err" >&2; fail "a pattern whose lines are bad alone exited $rc, not 3"; }
grep -q "bad pattern (line 1 of it): missing )" "$work/bad2.err" || fail "unclear: $(cat "$work/bad2.err")"
echo "grep_tree_test: all passed"
