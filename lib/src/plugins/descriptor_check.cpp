#include "descriptor_check.hpp"

#include <algorithm>
#include <set>

#include <dlfcn.h>

#include <fmt/format.h>

namespace taskhive::detail {

namespace {

// Bounds that no real plugin reaches, so a garbage count is reported instead of read past.
constexpr std::size_t max_kinds = 1024;
constexpr std::size_t max_params = 1024;

bool is_numeric_identifier(std::string_view s) noexcept {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  return s.size() == 1 || s[0] != '0';
}

bool is_identifier_char(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

// Dot-separated non-empty identifiers; prerelease ones that are numeric have no leading zeros.
bool are_identifiers(std::string_view s, bool prerelease) noexcept {
  if (s.empty()) return false;
  for (;;) {
    const auto dot = s.find('.');
    const auto part = s.substr(0, dot);
    if (part.empty() || !std::all_of(part.begin(), part.end(), is_identifier_char)) return false;
    const bool numeric = std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (prerelease && numeric && !is_numeric_identifier(part)) return false;
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

bool is_plugin_name(std::string_view name) noexcept {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '.' || c == '-';
  });
}

std::string malformed(std::string_view what) {
  return fmt::format("malformed descriptor: {}", what);
}

std::string_view param_type_name(std::uint32_t type) noexcept {
  switch (type) {
    case TASKHIVE_PARAM_STRING:
      return "string";
    case TASKHIVE_PARAM_INT:
      return "int";
    case TASKHIVE_PARAM_FLOAT:
      return "float";
    case TASKHIVE_PARAM_BOOL:
      return "bool";
    default:
      return {};
  }
}

std::optional<std::string> kind_problem(const taskhive_stage_kind& kind, std::size_t index) {
  if (!kind.name || !*kind.name) return malformed(fmt::format("kind {} has no name", index));
  const std::string_view type = kind_type_name(kind.type);
  if (type == "unknown")
    return malformed(fmt::format("kind \"{}\" has unknown type {}", kind.name, kind.type));
  auto lacks = [&](const char* function) {
    return malformed(fmt::format("kind \"{}\" ({}) has no {} function", kind.name, type, function));
  };
  if (kind.type == TASKHIVE_KIND_TASK) {
    if (!kind.run) return lacks("run");
  } else {
    if (!kind.create) return lacks("create");
    if (!kind.process) return lacks("process");
    if (!kind.destroy) return lacks("destroy");
    if (kind.type == TASKHIVE_KIND_SINK && !kind.finish) return lacks("finish");
  }
  if (kind.param_count > max_params || (kind.param_count > 0 && !kind.params))
    return malformed(
        fmt::format("kind \"{}\" declares {} parameters but no table of them", kind.name, kind.param_count));
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < kind.param_count; ++i) {
    const auto& param = kind.params[i];
    if (!param.name || !*param.name)
      return malformed(fmt::format("kind \"{}\": parameter {} has no name", kind.name, i));
    if (param_type_name(param.type).empty())
      return malformed(fmt::format("kind \"{}\": parameter \"{}\" has unknown type {}", kind.name, param.name,
                                   param.type));
    if (!names.insert(param.name).second)
      return malformed(fmt::format("kind \"{}\": duplicate parameter \"{}\"", kind.name, param.name));
  }
  return std::nullopt;
}

}  // namespace

bool is_semver(std::string_view version) noexcept {
  std::string_view build, prerelease;
  if (const auto plus = version.find('+'); plus != std::string_view::npos) {
    build = version.substr(plus + 1);
    if (!are_identifiers(build, false)) return false;
    version = version.substr(0, plus);
  }
  if (const auto dash = version.find('-'); dash != std::string_view::npos) {
    prerelease = version.substr(dash + 1);
    if (!are_identifiers(prerelease, true)) return false;
    version = version.substr(0, dash);
  }
  for (int part = 0; part < 3; ++part) {
    const auto dot = version.find('.');
    if ((part < 2) == (dot == std::string_view::npos)) return false;
    if (!is_numeric_identifier(version.substr(0, dot))) return false;
    version = part < 2 ? version.substr(dot + 1) : std::string_view{};
  }
  return true;
}

std::optional<std::string> descriptor_problem(const taskhive_plugin_descriptor& d) {
  if (!d.name || !*d.name) return malformed("missing name");
  if (!is_plugin_name(d.name))
    return malformed(fmt::format("name \"{}\" may hold only letters, digits, '_', '.' and '-'", d.name));
  if (!d.version || !*d.version) return malformed("missing version");
  if (!is_semver(d.version))
    return malformed(
        fmt::format("version \"{}\" is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)", d.version));
  if (d.kind_count == 0) return malformed("provides no stage kinds");
  if (d.kind_count > max_kinds || !d.kinds)
    return malformed(fmt::format("declares {} kinds but no table of them", d.kind_count));
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < d.kind_count; ++i) {
    if (auto problem = kind_problem(d.kinds[i], i)) return problem;
    if (!names.insert(d.kinds[i].name).second)
      return malformed(fmt::format("duplicate kind \"{}\"", d.kinds[i].name));
  }
  return std::nullopt;
}

std::vector<PluginKind> copy_kinds(const taskhive_plugin_descriptor& d) {
  std::vector<PluginKind> kinds;
  kinds.reserve(d.kind_count);
  for (std::size_t i = 0; i < d.kind_count; ++i) {
    const auto& k = d.kinds[i];
    PluginKind kind{k.name, std::string(kind_type_name(k.type)), k.description ? k.description : "", {}};
    for (std::size_t j = 0; j < k.param_count; ++j) {
      const auto& p = k.params[j];
      kind.params.push_back({p.name, std::string(param_type_name(p.type)), p.required != 0,
                             p.default_value ? std::optional<std::string>(p.default_value) : std::nullopt,
                             p.help ? p.help : ""});
    }
    kinds.push_back(std::move(kind));
  }
  return kinds;
}

const taskhive_plugin_descriptor* read_descriptor(void* handle, PluginRecord& record) {
  dlerror();
  auto entry = reinterpret_cast<taskhive_plugin_entry_fn>(dlsym(handle, TASKHIVE_PLUGIN_ENTRY_SYMBOL));
  if (!entry) {
    record.reason =
        "no taskhive_plugin_entry symbol: not a taskhive plugin (export it with TASKHIVE_PLUGIN_EXPORT)";
    return nullptr;
  }
  const taskhive_plugin_descriptor* descriptor = entry();
  if (!descriptor) {
    record.reason = "taskhive_plugin_entry returned NULL";
    return nullptr;
  }
  if (descriptor->abi_version != TASKHIVE_PLUGIN_ABI_VERSION) {
    record.reason = fmt::format(
        "ABI version mismatch: expected {}, found {}; rebuild the plugin against this "
        "taskhive's plugin_abi.h",
        TASKHIVE_PLUGIN_ABI_VERSION, descriptor->abi_version);
    return nullptr;
  }
  if (auto problem = descriptor_problem(*descriptor)) {
    if (descriptor->name && *descriptor->name) record.name = descriptor->name;
    record.reason = std::move(*problem);
    return nullptr;
  }
  record.name = descriptor->name;
  record.version = descriptor->version;
  record.description = descriptor->description ? descriptor->description : "";
  record.kinds = copy_kinds(*descriptor);
  return descriptor;
}

}  // namespace taskhive::detail
