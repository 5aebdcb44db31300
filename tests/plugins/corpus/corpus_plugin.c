/* The corpus of bad plugins: one C99 source, one variant per CORPUS_* definition
 * (tests/plugins/CMakeLists.txt builds each into its own .so). Written in C on purpose: it also proves
 * plugin_abi.h compiles as C99. Every variant except CORPUS_NO_ENTRY exports taskhive_plugin_entry. */
#define _POSIX_C_SOURCE 200809L /* pause() for CORPUS_CTOR_HANG */

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "taskhive/plugin_abi.h"

static int32_t create(const taskhive_kv* params, size_t count, void** instance, taskhive_error* err) {
  (void)params;
  (void)count;
  (void)err;
  *instance = NULL;
  return TASKHIVE_OK;
}

static int32_t process(void* instance, const taskhive_item* item, taskhive_emit_fn emit, void* ctx,
                       taskhive_error* err) {
  (void)instance;
  (void)err;
  return emit(ctx, item); /* passes items through */
}

static void destroy(void* instance) {
  (void)instance;
}

#if defined(CORPUS_DUPLICATE_KIND)
static const taskhive_stage_kind kinds[] = {
    {TASKHIVE_KIND_TRANSFORM, "pass", NULL, NULL, 0, create, process, destroy, NULL, NULL, NULL},
    {TASKHIVE_KIND_TRANSFORM, "pass", NULL, NULL, 0, create, process, destroy, NULL, NULL, NULL}};
#else
static const taskhive_stage_kind kinds[] = {{TASKHIVE_KIND_TRANSFORM, "pass", "passes items through", NULL, 0,
                                             create, process, destroy, NULL, NULL, NULL}};
#endif

#if defined(CORPUS_WRONG_ABI)
#define ABI 99u
#else
#define ABI TASKHIVE_PLUGIN_ABI_VERSION
#endif

#if defined(CORPUS_MISSING_NAME)
#define NAME NULL
#elif defined(CORPUS_DUPLICATE_NAME)
#define NAME "corpus_good" /* the name good.so (built from good.cpp) already has */
#elif defined(CORPUS_NAME)
#define NAME CORPUS_NAME
#else
#define NAME "corpus_bad"
#endif

#if defined(CORPUS_BAD_SEMVER)
#define VERSION "1.0"
#else
#define VERSION "0.1.0"
#endif

static const taskhive_plugin_descriptor descriptor = {
    ABI, NAME, VERSION, "a corpus plugin", kinds, sizeof kinds / sizeof kinds[0]};

#if defined(CORPUS_UNDEFINED_SYMBOL)
/* Defined nowhere: the link allows it (shared objects may have undefined symbols), dlopen with RTLD_NOW
 * fails. */
extern int taskhive_corpus_symbol_defined_nowhere(void);
#endif

/* Plugins that misbehave while loading, for the probe: only ever loaded in the probe's child process (they
 * live in their own directory, corpus-crash, so the in-process loader tests never meet them). */
#if defined(CORPUS_CTOR_SEGV) || defined(CORPUS_ENTRY_CRASH) || defined(CORPUS_CTOR_FORK_SEGV)
/* no_sanitize: in a TASKHIVE_SANITIZE build, UBSan would report the NULL store and exit with status 1 instead
 * of letting the SIGSEGV happen. */
__attribute__((no_sanitize("undefined"))) static void segfault(void) {
  /* Both volatile: the store really happens (GCC dropped it with only the pointer volatile), as a SIGSEGV
   * rather than a trap the compiler might put in for a known NULL store. */
  volatile int* volatile nowhere = NULL;
  *nowhere = 1;
}
#endif

#if defined(CORPUS_CTOR_ABORT)
__attribute__((constructor)) static void on_load(void) {
  abort();
}
#elif defined(CORPUS_CTOR_SEGV)
__attribute__((constructor)) static void on_load(void) {
  segfault();
}
#elif defined(CORPUS_CTOR_EXIT)
__attribute__((constructor)) static void on_load(void) {
  exit(3);
}
#elif defined(CORPUS_CTOR_HANG)
__attribute__((constructor)) static void on_load(void) {
  for (;;) pause();
}
#elif defined(CORPUS_CTOR_GATE)
/* Loads slowly in the host, on the test's word: outside the probe (its process is taskhive-probe), the
 * constructor creates $TASKHIVE_CORPUS_STARTED_FILE and waits (up to a minute) for $TASKHIVE_CORPUS_GATE_FILE
 * to exist, so a test can hold a load open for as long as it looks at the catalog. */
__attribute__((constructor)) static void on_load(void) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  const char* started = getenv("TASKHIVE_CORPUS_STARTED_FILE");
  const char* gate = getenv("TASKHIVE_CORPUS_GATE_FILE");
  int i;
  if (n > 0) self[n] = '\0';
  if (n <= 0 || strstr(self, "taskhive-probe") != NULL || started == NULL || gate == NULL) return;
  fclose(fopen(started, "w"));
  for (i = 0; i < 60000 && access(gate, F_OK) != 0; ++i) {
    const struct timespec millisecond = {0, 1000000};
    nanosleep(&millisecond, NULL);
  }
}
#elif defined(CORPUS_CTOR_FORK_SEGV)
/* Forks a process that would outlive it (holding the probe's socket, as any forked process does), then
 * crashes: the probe must report the crash rather than wait out its timeout for an end of file that never
 * comes, and must not leave the forked process behind. The forked process writes its pid to
 * $TASKHIVE_CORPUS_PID_FILE, for the test to look for it. */
__attribute__((constructor)) static void on_load(void) {
  if (fork() == 0) {
    const char* file = getenv("TASKHIVE_CORPUS_PID_FILE");
    FILE* out = file ? fopen(file, "w") : NULL;
    if (out) {
      fprintf(out, "%ld\n", (long)getpid());
      fclose(out);
    }
    for (;;) pause();
  }
  segfault();
}
#endif

#if !defined(CORPUS_NO_ENTRY)
TASKHIVE_PLUGIN_EXPORT const taskhive_plugin_descriptor* taskhive_plugin_entry(void) {
#if defined(CORPUS_UNDEFINED_SYMBOL)
  if (taskhive_corpus_symbol_defined_nowhere() != 0) return NULL;
#endif
#if defined(CORPUS_ENTRY_CRASH)
  segfault();
#endif
#if defined(CORPUS_ENTRY_NULL)
  (void)&descriptor;
  return NULL;
#else
  return &descriptor;
#endif
}
#else
/* Exports something, just not the entry. */
TASKHIVE_PLUGIN_EXPORT const taskhive_plugin_descriptor* some_other_function(void) {
  return &descriptor;
}
#endif
