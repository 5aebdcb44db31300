#!/usr/bin/env bash
# A scheduler destroyed from one of its own tasks must end the process with the reason, not hang.
#   self_destruct_test.sh SELF_DESTRUCT_EXE
set -uo pipefail
out="$(timeout 60 "$1" 2>&1)"
rc=$?
echo "$out"
[ "$rc" -ne 124 ] || { echo "FAIL: hung (timeout)" >&2; exit 1; }
[ "$rc" -eq 134 ] || { echo "FAIL: exited $rc, expected 134 (SIGABRT from std::terminate)" >&2; exit 1; }
grep -q "scheduler 'doomed' destroyed from one of its own tasks" <<<"$out" ||
  { echo "FAIL: the reason is not on stderr" >&2; exit 1; }
