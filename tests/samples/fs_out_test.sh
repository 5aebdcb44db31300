#!/usr/bin/env bash
# The fs and out sample plugins beyond hash-tree: fs.walk's include / exclude / max_depth / follow_symlinks
# against find, hash.file's xxh64 against a known digest, out.csv's RFC 4180 quoting read back by Python's
# csv module, out.jsonl without fields, and fs.copy / fs.remove as workflow set-up and clean-up tasks.
#   fs_out_test.sh TASKHIVE PLUGIN_DIR CONFIG_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sample_env.sh" "$@" -- fs hash out

root="$work/tree"
mkdir -p "$root/src/deep/er" "$root/.git" "$root/logs"
for f in a.log b.txt src/c.cpp src/deep/d.cpp src/deep/er/e.cpp .git/config logs/x.log; do
  printf '%s\n' "$f" >"$root/$f"
done
ln -s ../logs "$root/src/loglink"

walk() {  # walk NAME PARAMS: the paths below root fs.walk emits, in order, to $work/NAME
  cat >"$work/$1.yaml" <<YAML
plugins: {dirs: [plugins]}
pipeline:
  ordered: true
  source: {name: files, uses: fs.walk, params: {root: "$root", $2}}
  sink: {name: out, uses: out.jsonl, params: {path: "$work/$1.jsonl", fields: path}}
YAML
  "$taskhive" run "$work/$1.yaml" 2>"$work/stderr" || fail "$1: $(cat "$work/stderr")"
  python3 -c 'import json, sys
for line in open(sys.argv[2]): print(json.loads(line)["path"][len(sys.argv[1]) + 1:])' \
    "$root" "$work/$1.jsonl" >"$work/$1"
}
expect() {  # expect NAME WORDS...: the walk's output, in order
  local name="$1"; shift
  [ "$(tr '\n' ' ' <"$work/$name")" = "$* " ] || fail "$name: got '$(tr '\n' ' ' <"$work/$name")', want '$* '"
}

walk all 'max_depth: -1'
expect all .git/config a.log b.txt logs/x.log src/c.cpp src/deep/d.cpp src/deep/er/e.cpp
walk depth1 'max_depth: 1'
expect depth1 a.log b.txt
walk depth2 'max_depth: 2'
expect depth2 .git/config a.log b.txt logs/x.log src/c.cpp
walk cpp 'include: "*.cpp"'
expect cpp src/c.cpp src/deep/d.cpp src/deep/er/e.cpp
walk nogit 'exclude: ".git, deep"'
expect nogit a.log b.txt logs/x.log src/c.cpp
walk slash 'include: "src/*/*.cpp, *.log"'          # with '/': the whole path, '*' crossing '/'
expect slash a.log logs/x.log src/deep/d.cpp src/deep/er/e.cpp
walk follow 'follow_symlinks: true, include: "*.log"'
expect follow a.log logs/x.log src/loglink/x.log
# The same set as find, with and without -L.
(cd "$root" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$work/find"
LC_ALL=C sort "$work/all" | cmp -s - "$work/find" || fail "fs.walk and find -type f differ"
(cd "$root" && find -L . -type f -name '*.log' | sed 's|^\./||' | LC_ALL=C sort) >"$work/findL"
LC_ALL=C sort "$work/follow" | cmp -s - "$work/findL" || fail "follow_symlinks and find -L differ"

# A symlink loop while following: reported as an item error (exit 1), the walk goes on.
ln -s .. "$root/src/deep/up"
cat >"$work/loop.yaml" <<YAML
plugins: {dirs: [plugins]}
pipeline:
  source: {name: files, uses: fs.walk, params: {root: "$root", follow_symlinks: true}, on_error: skip}
  sink: {name: n, uses: out.summary, params: {path: "$work/loop.txt"}}
YAML
set +e; "$taskhive" run "$work/loop.yaml" 2>"$work/stderr"; status=$?; set -e
[ "$status" -eq 1 ] || fail "loop: exit $status: $(cat "$work/stderr")"
grep -q "file system loop" "$work/stderr" || fail "loop not reported: $(cat "$work/stderr")"
rm "$root/src/deep/up"

# xxh64 of "abc" (the xxHash reference value), and out.csv quoting read back by Python's csv module.
printf 'abc' >"$work/abc"
cp "$work/abc" "$work/odd, \"name\""$'\n'"x"
cat >"$work/csv.yaml" <<YAML
plugins: {dirs: [plugins]}
pipeline:
  ordered: true
  source: {name: files, uses: fs.walk, params: {root: "$work", include: "abc, odd*", max_depth: 1}}
  stages: [{name: h, uses: hash.file, params: {algorithm: xxh64}}]
  sink:
    - {name: csv, uses: out.csv, params: {path: "$work/out.csv", fields: "path,size,xxh64"}}
    - {name: all, uses: out.jsonl, params: {path: "$work/all.jsonl"}}
YAML
"$taskhive" run "$work/csv.yaml" 2>"$work/stderr" || fail "csv: $(cat "$work/stderr")"
python3 - "$work" <<'PY'
import csv, json, sys
work = sys.argv[1]
with open(f"{work}/out.csv", newline="") as f:
    rows = list(csv.reader(f))
assert rows == [["path", "size", "xxh64"],
                [f"{work}/abc", "3", "44bc2cf5ad770999"],
                [f'{work}/odd, "name"\nx', "3", "44bc2cf5ad770999"]], rows
raw = open(f"{work}/out.csv", "rb").read()
assert raw.count(b"\r\n") == 3 and b'"odd, ""name""\nx"' in raw.replace(work.encode() + b"/", b""), raw
first = json.loads(open(f"{work}/all.jsonl").readline())
assert list(first) == ["path", "size", "xxh64"], first   # no fields: the item's metadata in its order
PY

# fs.copy and fs.remove as workflow tasks: copy a tree, hash the copy, remove it under if: always.
cat >"$work/wf.yaml" <<YAML
plugins: {dirs: [plugins]}
workflow:
  tasks:
    - {name: setup, uses: fs.copy, params: {from: "$root", to: "$work/copy"}}
    - name: hash
      depends_on: [setup]
      pipeline:
        source: {name: files, uses: fs.walk, params: {root: "$work/copy"}}
        stages: [{name: h, uses: hash.file}]
        sink: {name: out, uses: out.jsonl, params: {path: "$work/copy.jsonl", fields: "path,sha256"}}
    - name: clean
      uses: fs.remove
      params: {path: "$work/copy", recursive: true}
      depends_on: [hash]
      if: always
    - {name: clean-again, uses: fs.remove, params: {path: "$work/copy"}, depends_on: [clean]}
YAML
"$taskhive" run "$work/wf.yaml" 2>"$work/stderr" || fail "workflow: $(cat "$work/stderr")"
[ ! -e "$work/copy" ] || fail "fs.remove left $work/copy"
[ "$(wc -l <"$work/copy.jsonl")" -eq 7 ] || fail "copy.jsonl: $(cat "$work/copy.jsonl")"
[ -L "$root/src/loglink" ] || fail "fs.remove followed a symlink out of the copy"
[ -e "$root/logs/x.log" ] || fail "fs.remove removed through a symlink"

# fs.remove refuses a non-empty directory without recursive, and the file-system root.
cat >"$work/bad.yaml" <<YAML
plugins: {dirs: [plugins]}
workflow:
  tasks:
    - {name: nonempty, uses: fs.remove, params: {path: "$root"}}
    - {name: slash, uses: fs.remove, params: {path: "/", recursive: true}}
YAML
set +e; "$taskhive" run "$work/bad.yaml" 2>"$work/stderr"; status=$?; set -e
[ "$status" -eq 1 ] || fail "bad removes: exit $status: $(cat "$work/stderr")"
grep -q "file-system root" "$work/stderr" || fail "no refusal of /: $(cat "$work/stderr")"
[ -e "$root/a.log" ] || fail "a non-recursive remove removed a tree"
echo "fs/out tests passed"
