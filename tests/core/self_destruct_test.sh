#!/usr/bin/env bash
# A scheduler destroyed while it ends one of its own tasks must end the process with the reason, not hang.
#   self_destruct_test.sh SELF_DESTRUCT_EXE
set -uo pipefail
for mode in worker cancel on_final; do
  out="$(timeout 60 "$1" "$mode" 2>&1)"
  rc=$?
  echo "$mode: exit $rc"
  echo "$out"
  [ "$rc" -ne 124 ] || { echo "FAIL: $mode: hung (timeout)" >&2; exit 1; }
  # 134 is SIGABRT from std::terminate; under ASan with handle_abort=1 the sanitizer exits 1 instead.
  [ "$rc" -ne 0 ] || { echo "FAIL: $mode: exited 0: the scheduler was not destroyed from its task" >&2; exit 1; }
  grep -q "scheduler 'doomed' destroyed from one of its own tasks" <<<"$out" ||
    { echo "FAIL: $mode: the reason is not on stderr" >&2; exit 1; }
done
