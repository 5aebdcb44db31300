#pragma once
// The plugin author's helper: write a class, get the C descriptor of taskhive/plugin_abi.h.
//
// @code
//   #include <taskhive/plugin.hpp>
//   namespace plugin = taskhive::plugin;
//
//   class Upper {   // a transform: one item in, 0..n out
//    public:
//     static constexpr taskhive_param_decl parameters[] = {
//         {"prefix", TASKHIVE_PARAM_STRING, 0, "", "text put before every item"}};
//     explicit Upper(const plugin::Params& params) : prefix_(params.get_or("prefix", "")) {}
//     void process(const plugin::Item& in, plugin::Emitter& emit) {
//       std::string out = prefix_ + std::string(in.text());
//       for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
//       emit(out, in.metadata());                      // throwing fails the item; the host gets the message
//     }
//    private:
//     std::string prefix_;
//   };
//
//   TASKHIVE_PLUGIN("sample_upper", "1.0.0", "text helpers",
//                   plugin::transform<Upper>("upper", "uppercases item bytes"));
// @endcode
//
// What each kind's class provides (all constructed from `const plugin::Params&`, except where noted):
//   transform<T>: void process(const Item&, Emitter&)
//   source<T>:    bool process(Emitter&)  -- emit the next items; return false when there are no more
//   sink<T>:      void process(const Item&); optional void flush(), void finish()
//   task<T>:      void run(const Params&), a static function or a member of a default-constructible T
// Optionally `static constexpr taskhive_param_decl parameters[]` declares the kind's parameters.
//
// Guarantee: no exception leaves a plugin built with this helper. At the boundary, plugin::Error becomes its
// code and message, std::bad_alloc TASKHIVE_ERR_NO_MEMORY, any other std::exception TASKHIVE_ERR_FAILED with
// what(), anything else TASKHIVE_ERR_FAILED with "unknown exception". Header-only: a plugin needs no taskhive
// library at link time. Build plugins with -fno-gnu-unique so they can really be unloaded.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "taskhive/plugin_abi.h"

namespace taskhive::plugin {

/// An error with a specific status code; other exceptions become TASKHIVE_ERR_FAILED.
class Error : public std::runtime_error {
 public:
  Error(taskhive_status code, const std::string& message) : std::runtime_error(message), code_(code) {}
  taskhive_status code() const noexcept { return code_; }

 private:
  taskhive_status code_;
};

/// Borrowed key/value pairs (parameters or metadata); valid only during the call that received them.
class KeyValues {
 public:
  KeyValues(const taskhive_kv* pairs, std::size_t count) noexcept : pairs_(pairs, pairs ? count : 0) {}

  std::optional<std::string_view> get(std::string_view key) const noexcept {
    for (const auto& kv : pairs_)
      if (key == kv.key) return std::string_view(kv.value);
    return std::nullopt;
  }
  std::string get_or(std::string_view key, std::string_view fallback) const {
    return std::string(get(key).value_or(fallback));
  }
  /// An integer parameter (or `fallback` when absent) within [min, max]; otherwise throws Error with
  /// TASKHIVE_ERR_INVALID_PARAM naming the key and the range, e.g. "level must be an integer from 1 to 19
  /// (got 99999999999)". The host checks that an int parameter is an integer, not that it fits.
  ///   const int level = params.get_int("level", 3, 1, 19);
  std::int64_t get_int(std::string_view key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max) const {
    const auto text = get(key);
    if (!text) return fallback;
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (error != std::errc() || end != text->data() + text->size() || value < min || value > max) {
      throw Error(TASKHIVE_ERR_INVALID_PARAM, std::string(key) + " must be an integer from " +
                                                  std::to_string(min) + " to " + std::to_string(max) +
                                                  " (got " + std::string(*text) + ")");
    }
    return value;
  }
  std::span<const taskhive_kv> pairs() const noexcept { return pairs_; }

 private:
  std::span<const taskhive_kv> pairs_;
};

/// The parameters given to create/run: declared ones only, defaults filled in, types checked by the host.
using Params = KeyValues;

/// An item received from the host: borrowed bytes and metadata.
class Item {
 public:
  explicit Item(const taskhive_item& item) noexcept : item_(item) {}

  std::span<const std::uint8_t> bytes() const noexcept { return {item_.data, item_.data ? item_.size : 0}; }
  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(item_.data), item_.data ? item_.size : 0};
  }
  KeyValues metadata() const noexcept { return {item_.metadata, item_.metadata_count}; }

 private:
  const taskhive_item& item_;
};

/// Hands items to the host, which copies them before the call returns.
class Emitter {
 public:
  Emitter(taskhive_emit_fn emit, void* ctx) noexcept : emit_(emit), ctx_(ctx) {}

  /// Emits bytes with metadata. Throws Error when the host refuses more (cancellation or its own failure),
  /// which ends the current call with that code.
  void operator()(std::string_view bytes, KeyValues metadata = {nullptr, 0}) const {
    const taskhive_item item{reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(),
                             metadata.pairs().data(), metadata.pairs().size()};
    if (const std::int32_t rc = emit_(ctx_, &item); rc != TASKHIVE_OK)
      throw Error(static_cast<taskhive_status>(rc), "the host stopped accepting items");
  }

  /// Emits bytes with metadata given as pairs, e.g. emit(text, {{"lang", "en"}}).
  void operator()(std::string_view bytes,
                  std::initializer_list<std::pair<const char*, const char*>> meta) const {
    std::vector<taskhive_kv> pairs;
    pairs.reserve(meta.size());
    for (const auto& [k, v] : meta) pairs.push_back({k, v});
    (*this)(bytes, KeyValues(pairs.data(), pairs.size()));
  }

 private:
  taskhive_emit_fn emit_;
  void* ctx_;
};

namespace detail {

// Runs fn, turning every exception into a status code and a message in err.
template <class Fn>
std::int32_t guarded(taskhive_error* err, Fn&& fn) noexcept {
  auto fail = [err](taskhive_status code, const char* message) noexcept {
    if (err) {
      std::strncpy(err->message, message, sizeof err->message - 1);
      err->message[sizeof err->message - 1] = '\0';
    }
    return static_cast<std::int32_t>(code);
  };
  try {
    return fn();
  } catch (const Error& e) {
    return fail(e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return fail(TASKHIVE_ERR_NO_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(TASKHIVE_ERR_FAILED, e.what());
  } catch (...) {
    return fail(TASKHIVE_ERR_FAILED, "unknown exception");
  }
}

template <class T>
constexpr std::span<const taskhive_param_decl> parameters_of() noexcept {
  if constexpr (requires { T::parameters; })
    return {T::parameters, std::size(T::parameters)};
  else
    return {};
}

template <class T>
std::int32_t create(const taskhive_kv* params, std::size_t count, void** instance,
                    taskhive_error* err) noexcept {
  return guarded(err, [&] {
    *instance = new T(Params(params, count));
    return std::int32_t{TASKHIVE_OK};
  });
}

template <class T>
void destroy(void* instance) noexcept {
  delete static_cast<T*>(instance);  // a destructor that throws terminates, as everywhere in C++
}

template <class T>
taskhive_stage_kind kind(taskhive_kind_type type, const char* name, const char* description) noexcept {
  constexpr auto params = parameters_of<T>();
  taskhive_stage_kind k{};
  k.type = type;
  k.name = name;
  k.description = description;
  k.params = params.data();
  k.param_count = params.size();
  return k;
}

}  // namespace detail

/// A transform kind from T: T(const Params&), void T::process(const Item&, Emitter&).
template <class T>
taskhive_stage_kind transform(const char* name, const char* description = nullptr) noexcept {
  auto k = detail::kind<T>(TASKHIVE_KIND_TRANSFORM, name, description);
  k.create = &detail::create<T>;
  k.destroy = &detail::destroy<T>;
  k.process = [](void* self, const taskhive_item* item, taskhive_emit_fn emit, void* ctx,
                 taskhive_error* err) noexcept {
    return detail::guarded(err, [&] {
      Emitter emitter(emit, ctx);
      static_cast<T*>(self)->process(Item(*item), emitter);
      return std::int32_t{TASKHIVE_OK};
    });
  };
  return k;
}

/// A source kind from T: T(const Params&), bool T::process(Emitter&) returning false when exhausted.
template <class T>
taskhive_stage_kind source(const char* name, const char* description = nullptr) noexcept {
  auto k = detail::kind<T>(TASKHIVE_KIND_SOURCE, name, description);
  k.create = &detail::create<T>;
  k.destroy = &detail::destroy<T>;
  k.process = [](void* self, const taskhive_item*, taskhive_emit_fn emit, void* ctx,
                 taskhive_error* err) noexcept {
    return detail::guarded(err, [&] {
      Emitter emitter(emit, ctx);
      return std::int32_t{static_cast<T*>(self)->process(emitter) ? TASKHIVE_OK : TASKHIVE_END};
    });
  };
  return k;
}

/// A sink kind from T: T(const Params&), void T::process(const Item&); optional flush() and finish().
template <class T>
taskhive_stage_kind sink(const char* name, const char* description = nullptr) noexcept {
  auto k = detail::kind<T>(TASKHIVE_KIND_SINK, name, description);
  k.create = &detail::create<T>;
  k.destroy = &detail::destroy<T>;
  k.process = [](void* self, const taskhive_item* item, taskhive_emit_fn, void*,
                 taskhive_error* err) noexcept {
    return detail::guarded(err, [&] {
      static_cast<T*>(self)->process(Item(*item));
      return std::int32_t{TASKHIVE_OK};
    });
  };
  k.flush = [](void* self, taskhive_error* err) noexcept {
    return detail::guarded(err, [&] {
      if constexpr (requires(T & t) { t.flush(); }) static_cast<T*>(self)->flush();
      return std::int32_t{TASKHIVE_OK};
    });
  };
  k.finish = [](void* self, taskhive_error* err) noexcept {
    return detail::guarded(err, [&] {
      if constexpr (requires(T & t) { t.finish(); }) static_cast<T*>(self)->finish();
      return std::int32_t{TASKHIVE_OK};
    });
  };
  return k;
}

/// A task kind from T: static void T::run(const Params&), or a member run(const Params&) of a
/// default-constructible T (a fresh T per run).
template <class T>
taskhive_stage_kind task(const char* name, const char* description = nullptr) noexcept {
  auto k = detail::kind<T>(TASKHIVE_KIND_TASK, name, description);
  k.run = [](const taskhive_kv* params, std::size_t count, taskhive_error* err) noexcept {
    return detail::guarded(err, [&] {
      if constexpr (requires(const Params& p) { T::run(p); })
        T::run(Params(params, count));
      else
        T().run(Params(params, count));
      return std::int32_t{TASKHIVE_OK};
    });
  };
  return k;
}

}  // namespace taskhive::plugin

/// Defines taskhive_plugin_entry for a plugin named NAME, of semantic version VERSION, with a one-line
/// DESCRIPTION and the kinds that follow (plugin::transform<T>(...), source, sink, task). Use once per
/// plugin.
#define TASKHIVE_PLUGIN(NAME, VERSION, DESCRIPTION, ...)                                 \
  TASKHIVE_PLUGIN_EXPORT const taskhive_plugin_descriptor* taskhive_plugin_entry(void) { \
    static const taskhive_stage_kind taskhive_kinds_[] = {__VA_ARGS__};                  \
    static const taskhive_plugin_descriptor taskhive_descriptor_{                        \
        TASKHIVE_PLUGIN_ABI_VERSION,                                                     \
        NAME,                                                                            \
        VERSION,                                                                         \
        DESCRIPTION,                                                                     \
        taskhive_kinds_,                                                                 \
        sizeof taskhive_kinds_ / sizeof taskhive_kinds_[0]};                             \
    return &taskhive_descriptor_;                                                        \
  }                                                                                      \
  static_assert(true, "TASKHIVE_PLUGIN ends with a semicolon")
