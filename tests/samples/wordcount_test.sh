#!/usr/bin/env bash
# configs/wordcount.yaml end to end: the top N words of a generated tree equal a reference computed here
# in Python from the documented definition (runs of ASCII letters, digits and apostrophes, apostrophes at
# the ends dropped, lowercased; most frequent first, ties in byte order). The tree has mixed case,
# apostrophes ("don't", "'quoted'", a lone "'"), digits, punctuation, non-ASCII bytes, CRLF, an empty file,
# a last line without a newline, and many ties; n = 20 (the default), 5 and 0 (all words). Also text.lines
# then text.words on line items, an item per word.
#   wordcount_test.sh TASKHIVE PLUGIN_DIR CONFIG_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sample_env.sh" "$@" -- fs text

root="$work/tree"
mkdir -p "$root/a/b" "$root/c"
printf "The quick brown fox. THE LAZY dog's bone; the end\n" >"$root/a/one.txt"
printf "Don't stop: don't 'quoted' ' -- x86_64 and 42 42 42\r\nca\xc3\xa9 caf\xe9 na\xefve\n" \
  >"$root/a/b/two.txt"
printf 'no newline at the end' >"$root/c/three.txt"
: >"$root/c/empty.txt"
# Many words with equal counts, so the cut at N falls inside a tie.
awk 'BEGIN { for (i = 0; i < 300; i++) printf "w%03d w%03d tie%02d\n", i % 50, i % 37, i % 25 }' \
  >"$root/c/ties.txt"

reference() {  # reference N
  python3 - "$root" "$1" <<'PY'
import collections, os, re, sys
root, n = sys.argv[1], int(sys.argv[2])
counts = collections.Counter()
for d, _, files in os.walk(root):
    for f in files:
        with open(os.path.join(d, f), "rb") as fh:
            for run in re.findall(rb"[A-Za-z0-9']+", fh.read()):
                word = run.strip(b"'").lower()
                if word:
                    counts[word] += 1
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
for word, count in (top if n == 0 else top[:n]):
    sys.stdout.buffer.write(b"%d %s\n" % (count, word))
PY
}

for n in 20 5 0; do
  vars=(--var plugin_dir="$work/plugins" --var root="$root" --var out="$work/got.$n")
  [ "$n" = 20 ] || vars+=(--var n="$n")   # 20 is the config's default
  "$taskhive" run "$configs/wordcount.yaml" "${vars[@]}" 2>"$work/err" ||
    { cat "$work/err" >&2; fail "n=$n: run failed"; }
  reference "$n" >"$work/want.$n"
  [ "$n" = 0 ] || [ "$(wc -l <"$work/want.$n")" -eq "$n" ] || fail "n=$n: the reference has too few words"
  cmp -s "$work/want.$n" "$work/got.$n" ||
    { diff "$work/want.$n" "$work/got.$n" | head -20 >&2; fail "n=$n: differs from the reference"; }
  echo "ok: n=$n ($(wc -l <"$work/want.$n") words)"
done

# The same through text.lines and text.words on line items, an item per word (batch: false).
cat >"$work/lines.yaml" <<YAML
plugins: {dirs: ["$work/plugins"]}
pipeline:
  source: {name: files, uses: fs.walk, params: {root: "$root"}}
  stages:
    - {name: lines, uses: text.lines, concurrency: unlimited}
    - {name: words, uses: text.words, params: {batch: false}, concurrency: unlimited}
  sink: {name: top, uses: text.wordcount, params: {path: "$work/lines.out"}}
YAML
"$taskhive" run "$work/lines.yaml" 2>"$work/err" || { cat "$work/err" >&2; fail "lines.yaml: run failed"; }
cmp -s "$work/want.20" "$work/lines.out" || fail "text.lines -> text.words (batch: false) differs"
echo "ok: text.lines then text.words, an item per word"

# Stdout by default.
"$taskhive" run "$configs/wordcount.yaml" --var plugin_dir="$work/plugins" --var root="$root" --var n=5 \
  >"$work/stdout" 2>/dev/null
cmp -s "$work/want.5" "$work/stdout" || fail "stdout differs from the reference"
echo "wordcount_test: all passed"
