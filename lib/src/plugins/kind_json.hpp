#pragma once
// The JSON form of a plugin's kinds, shared by the probe protocol (taskhive-probe writes it, the host reads
// it) and the probe cache, so the two cannot drift apart.

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "taskhive/loader.hpp"

namespace taskhive::detail {

/// [{"name", "type", "description", "params": [{"name", "type", "required", "default" (or null), "help"}]}]
inline nlohmann::json kinds_to_json(const std::vector<PluginKind>& kinds) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& kind : kinds) {
    nlohmann::json params = nlohmann::json::array();
    for (const auto& p : kind.params) {
      params.push_back({{"name", p.name},
                        {"type", p.type},
                        {"required", p.required},
                        {"default", p.default_value ? nlohmann::json(*p.default_value) : nlohmann::json()},
                        {"help", p.help}});
    }
    out.push_back({{"name", kind.name},
                   {"type", kind.type},
                   {"description", kind.description},
                   {"params", std::move(params)}});
  }
  return out;
}

/// The inverse of kinds_to_json(); a missing or null "default" means none. Throws nlohmann::json::exception
/// on a malformed document (callers treat that as a bad probe line or a corrupt cache).
inline std::vector<PluginKind> kinds_from_json(const nlohmann::json& in) {
  std::vector<PluginKind> kinds;
  for (const auto& k : in) {
    PluginKind kind{k.at("name").get<std::string>(),
                    k.at("type").get<std::string>(),
                    k.at("description").get<std::string>(),
                    {}};
    for (const auto& p : k.at("params")) {
      PluginParam param{p.at("name").get<std::string>(), p.at("type").get<std::string>(),
                        p.at("required").get<bool>(), std::nullopt, p.at("help").get<std::string>()};
      if (p.contains("default") && !p.at("default").is_null())
        param.default_value = p.at("default").get<std::string>();
      kind.params.push_back(std::move(param));
    }
    kinds.push_back(std::move(kind));
  }
  return kinds;
}

}  // namespace taskhive::detail
