/* The taskhive plugin ABI: the C contract between a host and the shared libraries that give it stages.
 *
 * Example (plain C; C++ authors use taskhive/plugin.hpp, which builds all of this from a class):
 *
 *   static int32_t upper_process(void* self, const taskhive_item* in, taskhive_emit_fn emit,
 *                                void* emit_ctx, taskhive_error* err) { ...; return emit(emit_ctx, &out); }
 *   static const taskhive_stage_kind kinds[] = {
 *       {TASKHIVE_KIND_TRANSFORM, "upper", "uppercases bytes", NULL, 0,
 *        upper_create, upper_process, upper_destroy, NULL, NULL, NULL}};
 *   static const taskhive_plugin_descriptor descriptor = {
 *       TASKHIVE_PLUGIN_ABI_VERSION, "sample_upper", "1.0.0", "text helpers", kinds, 1};
 *   TASKHIVE_PLUGIN_EXPORT const taskhive_plugin_descriptor* taskhive_plugin_entry(void) { return
 * &descriptor; }
 *
 * Why C: a C ABI survives differences in compilers, standard libraries and their versions between host and
 * plugin; C++ classes, exceptions and std:: types do not. Hence the rules below.
 *
 * Rules, for both sides:
 * - The plugin exports one symbol, taskhive_plugin_entry. The host calls it once after loading and reads the
 *   descriptor, which must stay valid and unchanged until the library is unloaded (static storage).
 * - The descriptor's first member is abi_version. A host refuses a plugin whose abi_version differs from its
 *   own TASKHIVE_PLUGIN_ABI_VERSION and reads nothing past that member. Any change to a struct or a function
 *   signature in this file increments TASKHIVE_PLUGIN_ABI_VERSION.
 * - Nothing is thrown across the boundary (a C++ exception escaping into the host is undefined behaviour):
 *   every fallible function returns a taskhive_status and describes a failure in the taskhive_error the host
 *   passes in.
 * - Memory is never freed on the other side of the boundary: what a call receives (items, parameters, the
 *   error buffer) is borrowed for the duration of that call; what the host keeps, it copies.
 * - All strings are NUL-terminated UTF-8.
 * - An instance (what create returns) is used by one thread at a time; different instances of one kind may be
 *   used concurrently, so kinds keep no unsynchronized global state.
 *
 * Must compile as C99 and as C++.
 */
#ifndef TASKHIVE_PLUGIN_ABI_H
#define TASKHIVE_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

/* The version of everything in this file. A host loads only plugins built against the same version. */
#define TASKHIVE_PLUGIN_ABI_VERSION 1u

/* The symbol the host looks up, and its type. */
#define TASKHIVE_PLUGIN_ENTRY_SYMBOL "taskhive_plugin_entry"

/* Size of the message buffer in taskhive_error, terminating NUL included. */
#define TASKHIVE_ERROR_MESSAGE_SIZE 512

#ifdef __cplusplus
#define TASKHIVE_PLUGIN_EXTERN_C extern "C"
#else
#define TASKHIVE_PLUGIN_EXTERN_C
#endif

/* Marks taskhive_plugin_entry for export even when the plugin builds with -fvisibility=hidden. */
#define TASKHIVE_PLUGIN_EXPORT TASKHIVE_PLUGIN_EXTERN_C __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

/* What a call returns. Plain int32_t in signatures, so the size never depends on the compiler's enums. */
typedef enum taskhive_status {
  TASKHIVE_OK = 0,                /* success */
  TASKHIVE_END = 1,               /* a source has no more items (not an error) */
  TASKHIVE_ERR_INVALID_PARAM = 2, /* create/run: a parameter is missing or unusable; the message says which */
  TASKHIVE_ERR_FAILED = 3,        /* the operation failed; the message says why */
  TASKHIVE_ERR_NO_MEMORY = 4,     /* an allocation failed */
  TASKHIVE_ERR_CANCELLED = 5      /* emit: the host wants no more items; stop and return this code */
} taskhive_status;

/* Where a failing call describes its failure. The host provides it zeroed; the plugin writes at most
 * TASKHIVE_ERROR_MESSAGE_SIZE bytes, NUL-terminated, into message, and the host copies it out. */
typedef struct taskhive_error {
  char message[TASKHIVE_ERROR_MESSAGE_SIZE];
} taskhive_error;

/* One string key/value pair: item metadata, and the parameters given to create and run. */
typedef struct taskhive_kv {
  const char* key;   /* non-NULL */
  const char* value; /* non-NULL */
} taskhive_kv;

/* A unit of data moving through a pipeline: bytes plus string metadata. Borrowed for the call that gets it.
 */
typedef struct taskhive_item {
  const uint8_t* data;         /* size bytes; may be NULL when size is 0 */
  size_t size;                 /* number of bytes at data */
  const taskhive_kv* metadata; /* metadata_count pairs, keys unique; may be NULL when metadata_count is 0 */
  size_t metadata_count;
} taskhive_item;

/* The host's callback through which sources and transforms hand out items, 0..n per call. The host copies
 * the item before returning. A result other than TASKHIVE_OK means: stop emitting and return that code. */
typedef int32_t (*taskhive_emit_fn)(void* emit_ctx, const taskhive_item* item);

/* The type a parameter's value must parse as; values always travel as strings. */
typedef enum taskhive_param_type {
  TASKHIVE_PARAM_STRING = 0,
  TASKHIVE_PARAM_INT = 1,   /* decimal, optional sign, fits int64_t */
  TASKHIVE_PARAM_FLOAT = 2, /* as strtod reads it */
  TASKHIVE_PARAM_BOOL = 3   /* "true" or "false" */
} taskhive_param_type;

/* A parameter a kind declares, so a host can validate a pipeline's configuration before any plugin code runs.
 */
typedef struct taskhive_param_decl {
  const char* name;          /* non-NULL, unique within the kind */
  uint32_t type;             /* a taskhive_param_type */
  uint32_t required;         /* 1: must be given; 0: optional */
  const char* default_value; /* used when an optional parameter is not given; NULL: none */
  const char* help;          /* one line for people; may be NULL */
} taskhive_param_decl;

/* The four kinds of stage a plugin may provide. */
typedef enum taskhive_kind_type {
  TASKHIVE_KIND_SOURCE = 1,    /* produces items: process(item = NULL) emits 0..n, TASKHIVE_END when done */
  TASKHIVE_KIND_TRANSFORM = 2, /* one item in, 0..n out through emit */
  TASKHIVE_KIND_SINK = 3,      /* consumes items; flush on request, finish once at the end of the stream */
  TASKHIVE_KIND_TASK = 4       /* a one-shot action for workflows: run(params), success or an error */
} taskhive_kind_type;

/* One stage kind. Function pointers a type does not use are NULL:
 *   source:    create, process, destroy
 *   transform: create, process, destroy
 *   sink:      create, process, destroy, flush, finish
 *   task:      run
 * The host calls create once per stage instance, then process any number of times, then (sinks) finish, then
 * destroy exactly once, even after a failure; destroy is not called if create failed. */
typedef struct taskhive_stage_kind {
  uint32_t type;                     /* a taskhive_kind_type */
  const char* name;                  /* non-NULL, unique within the plugin, e.g. "upper" */
  const char* description;           /* one line for people; may be NULL */
  const taskhive_param_decl* params; /* param_count declarations; may be NULL when param_count is 0 */
  size_t param_count;

  /* Makes an instance from the parameters (declared ones only, defaults filled in, types checked by the
   * host). On success stores it in *instance and returns TASKHIVE_OK. */
  int32_t (*create)(const taskhive_kv* params, size_t param_count, void** instance, taskhive_error* err);

  /* source: item is NULL; emit the next items, or return TASKHIVE_END when there are no more.
   * transform: emit 0..n items made from item.
   * sink: consume item; emit is NULL. */
  int32_t (*process)(void* instance, const taskhive_item* item, taskhive_emit_fn emit, void* emit_ctx,
                     taskhive_error* err);

  /* Frees the instance. Cannot fail. */
  void (*destroy)(void* instance);

  /* sink: write out what is buffered (the host may call it at any time between process calls). */
  int32_t (*flush)(void* instance, taskhive_error* err);

  /* sink: the stream ended; write out everything. Called once, before destroy, when the stream ends normally.
   */
  int32_t (*finish)(void* instance, taskhive_error* err);

  /* task: do the action with these parameters. */
  int32_t (*run)(const taskhive_kv* params, size_t param_count, taskhive_error* err);
} taskhive_stage_kind;

/* What taskhive_plugin_entry returns. */
typedef struct taskhive_plugin_descriptor {
  uint32_t abi_version;             /* TASKHIVE_PLUGIN_ABI_VERSION the plugin was built with; always first */
  const char* name;                 /* non-NULL, non-empty, unique among a host's plugins: [A-Za-z0-9_.-]+ */
  const char* version;              /* the plugin's own version, semantic versioning: "1.2.3", "1.0.0-rc.1" */
  const char* description;          /* one line for people; may be NULL */
  const taskhive_stage_kind* kinds; /* kind_count kinds, names unique */
  size_t kind_count;
} taskhive_plugin_descriptor;

/* The plugin's entry point. Called with no locks held, possibly more than once; must not fail except by
 * returning NULL (which the host reports and refuses). */
typedef const taskhive_plugin_descriptor* (*taskhive_plugin_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TASKHIVE_PLUGIN_ABI_H */
