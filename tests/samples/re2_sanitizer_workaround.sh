# Sourced by the sample tests whose configs load text.so (and with it libre2).
#
# Sanitizer builds: libre2 has thread-local storage, allocated per thread on demand. Up to GCC 13 the
# sanitizers' __tls_get_addr interceptor takes such a block at a 4096-byte offset of 16 for a pre-2.25 glibc
# header and reads garbage bounds from it, so LeakSanitizer's exit-time scan crashes now and then ("Tracer
# caught signal 11", no leak found). Not intercepting it only stops scanning those blocks, which can add leak
# reports but never hide one. Ignored by builds without ASan.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}intercept_tls_get_addr=0"
