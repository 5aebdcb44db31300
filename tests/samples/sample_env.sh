# Sourced first by every sample test, with the test's arguments and then the plugins its configs use:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/sample_env.sh" "$@" -- fs hash out
#
# Sets taskhive, plugin_src and configs from TASKHIVE PLUGIN_DIR CONFIG_DIR; makes $work, a temporary
# directory removed at exit (even where a test made parts of it unreadable); defines fail; installs just the
# named plugins, mode 0755, into $work/plugins (the loader refuses group-writable files, and half-built other
# plugins cannot interfere); keeps the probe cache in $work; and runs tools in the C locale.
taskhive="$1"
plugin_src="$2"
configs="$3"
shift 3
[ "${1:-}" = "--" ] && shift
work="$(mktemp -d)"
trap 'chmod -R u+rwx "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export LC_ALL=C
export XDG_CACHE_HOME="$work/cache"
mkdir -m 755 "$work/plugins"
for plugin in "$@"; do
  install -m 755 "$plugin_src/$plugin.so" "$work/plugins/"
  # Sanitizer builds: libre2, which text.so loads, has thread-local storage, allocated per thread on demand.
  # Up to GCC 13 the sanitizers' __tls_get_addr interceptor takes such a block at a 4096-byte offset of 16
  # for a pre-2.25 glibc header and reads garbage bounds from it, so LeakSanitizer's exit-time scan crashes
  # now and then ("Tracer caught signal 11", no leak found). Not intercepting it only stops scanning those
  # blocks, which can add leak reports but never hide one. Ignored by builds without ASan.
  if [ "$plugin" = text ]; then export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}intercept_tls_get_addr=0"; fi
done
