#!/usr/bin/env bash
# configs/hash-tree.yaml end to end: for every file of a hostile tree, the same path, size and sha256 as
# `find ROOT -type f -print0 | xargs -0 sha256sum -z`, with names holding spaces, newlines, quotes,
# backslashes, leading dashes and bytes that are not UTF-8 (written as "path_base64"), empty files, a nested
# directory, symlinks and a FIFO (neither followed nor opened), an unreadable directory and file (item errors:
# reported, counted, exit 1, the rest still hashed; as root the test reruns itself as nobody to make one) and
# a sparse file over 1 GiB (1.1 GB of zeros read through the stream, never held in memory; about 1 s).
#   hash_tree_test.sh TASKHIVE PLUGIN_DIR CONFIG_DIR
set -euo pipefail

# As root every directory is readable, so the unreadable-directory case cannot be made: when it can, the test
# runs itself again as nobody (CI often runs as root), else it leaves that case out.
if [ "$(id -u)" -eq 0 ] && [ -z "${HASH_TREE_TEST_REEXEC:-}" ] && command -v setpriv >/dev/null &&
  id nobody >/dev/null 2>&1; then
  as_nobody=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
  if "${as_nobody[@]}" test -x "$1" -a -r "$2/fs.so" -a -r "$3/hash-tree.yaml" -a -r "$0" 2>/dev/null; then
    echo "hash-tree: running as nobody, so that a directory can be unreadable"
    HASH_TREE_TEST_REEXEC=1 exec "${as_nobody[@]}" env HOME=/nonexistent bash "$0" "$@"
  fi
fi

source "$(dirname "${BASH_SOURCE[0]}")/sample_env.sh" "$@" -- fs hash out

root="$work/tree"
mkdir -p "$root/a/b/c" "$root/-dir with space"
printf 'hello\n' >"$root/with space.txt"
printf 'x' >"$root/new"$'\n'"line"
printf 'q' >"$root/quote\"s'"
printf 'b' >"$root/back\\slash"
printf 'd' >"$root/-leading-dash"
printf 'i' >"$root/bad"$'\xff\xfe'"name"
printf 'l' >"$root/latin1-caf"$'\xe9'
printf 'u' >"$root/utf8-café-日本"
: >"$root/empty"
: >"$root/a/b/c/empty too"
head -c 300000 /dev/urandom >"$root/a/b/c/random.bin"   # more than one 128 KiB chunk, not a multiple
printf 'n' >"$root/-dir with space/nested"
ln -s "with space.txt" "$root/link-to-file"
ln -s a "$root/link-to-dir"
ln -s nowhere "$root/dangling"
mkfifo "$root/fifo"
truncate -s 1100M "$root/big.sparse"
if [ "$(id -u)" -ne 0 ]; then
  mkdir -p "$root/locked/inside"
  printf 's' >"$root/locked/inside/secret"
  chmod 000 "$root/locked"
  printf 'r' >"$root/unreadable file"   # listed by the walk, refused by hash.file: an item error there
  chmod 000 "$root/unreadable file"
  locked=1
else
  locked=0   # root reads any directory: the unreadable case cannot be made
  echo "hash-tree: running as root: the unreadable-directory case is left out"
fi

run_config() {  # run_config OUT [VARS...]: exit status in $status
  local out="$1"; shift
  set +e
  "$taskhive" run "$configs/hash-tree.yaml" --var plugin_dir="$work/plugins" --var root="$root" \
    --var out="$out" "$@" 2>"$work/stderr"
  status=$?
  set -e
}

start=$(date +%s%N)
run_config "$work/out.jsonl"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "hash-tree: $elapsed_ms ms for the tree with the 1.1 GB sparse file"
if [ "$locked" -eq 1 ]; then
  [ "$status" -eq 1 ] || { cat "$work/stderr" >&2; fail "expected exit 1 (unreadable dir), got $status"; }
  grep -q "cannot open directory .*locked: Permission denied" "$work/stderr" ||
    fail "the unreadable directory is not reported: $(cat "$work/stderr")"
  grep -q "hash: cannot open .*unreadable file: Permission denied" "$work/stderr" ||
    fail "the unreadable file is not reported: $(cat "$work/stderr")"
else
  [ "$status" -eq 0 ] || { cat "$work/stderr" >&2; fail "expected exit 0, got $status"; }
fi
grep -q "^hash-tree: .* items" "$work/stderr" || fail "no out.summary line: $(cat "$work/stderr")"

# The reference. find reports the unreadable directory on stderr and exits 1: expected.
(find "$root" -type f -print0 2>/dev/null || true) | xargs -0 sha256sum -z >"$work/ref" 2>/dev/null || true

python3 - "$work/out.jsonl" "$work/ref" "$root" "$locked" <<'PY'
import base64, json, os, sys
out_path, ref_path, root, locked = sys.argv[1], sys.argv[2], os.fsencode(sys.argv[3]), sys.argv[4] == "1"

got = {}
with open(out_path, "rb") as f:
    for raw in f.read().split(b"\n")[:-1]:
        line = json.loads(raw)          # every line is valid JSON (UTF-8)
        assert list(line) in (["path", "size", "sha256"], ["path_base64", "size", "sha256"]), line
        path = line["path"].encode() if "path" in line else base64.b64decode(line["path_base64"])
        assert path not in got, f"{path!r} twice"
        got[path] = (line["size"], line["sha256"])

want = {}
with open(ref_path, "rb") as f:
    for rec in f.read().split(b"\0")[:-1]:
        digest, path = rec[:64].decode(), rec[66:]     # "HASH  NAME" (or "HASH *NAME"), unescaped with -z
        want[path] = (os.lstat(path).st_size, digest)   # size a JSON number: numbers: size

if got != want:
    for p in sorted(set(got) | set(want)):
        if got.get(p) != want.get(p):
            print(f"  {p!r}: taskhive {got.get(p)}, sha256sum {want.get(p)}", file=sys.stderr)
    sys.exit("hash-tree differs from find | xargs sha256sum")

names = {os.path.relpath(p, root) for p in got}
for must in [b"new\nline", b"bad\xff\xfename", b"latin1-caf\xe9", b"back\\slash", b"-leading-dash",
             b"empty", b"big.sparse", b"a/b/c/random.bin", b"-dir with space/nested"]:
    assert must in names, f"{must!r} missing"
for never in [b"link-to-file", b"link-to-dir/b/c/random.bin", b"fifo", b"dangling"]:
    assert never not in names, f"{never!r} must not be listed (symlink or FIFO)"
assert got[root + b"/big.sparse"][0] == 1100 * 1024 * 1024
print(f"hash-tree: {len(got)} files match sha256sum")
PY

# Ordered output follows the walk: sorted by name within each directory, the same on every run.
run_config "$work/ordered1.jsonl" --var ordered=true
run_config "$work/ordered2.jsonl" --var ordered=true
cmp -s "$work/ordered1.jsonl" "$work/ordered2.jsonl" || fail "ordered runs differ"
sort "$work/out.jsonl" >"$work/a"; sort "$work/ordered1.jsonl" >"$work/b"
cmp -s "$work/a" "$work/b" || fail "ordered and unordered runs hold different lines"

# stdout is the default output.
"$taskhive" run "$configs/hash-tree.yaml" --var plugin_dir="$work/plugins" --var root="$root/a" \
  >"$work/stdout" 2>"$work/stderr" || fail "stdout run failed: $(cat "$work/stderr")"
[ "$(wc -l <"$work/stdout")" -eq 2 ] || fail "stdout: $(cat "$work/stdout")"
echo "hash-tree tests passed"
