#pragma once
// Plugin records as the loader would report them, built by hand: the config layer only reads their kinds and
// declared params, so no plugin needs to be built or loaded to test validation against them.

#include <optional>
#include <string>
#include <vector>

#include <taskhive/config.hpp>
#include <taskhive/loader.hpp>

namespace taskhive::test {

inline PluginParam param(std::string name, std::string type, bool required,
                         std::optional<std::string> default_value = std::nullopt) {
  return {std::move(name), std::move(type), required, std::move(default_value), ""};
}

inline PluginRecord plugin(std::string name, std::vector<PluginKind> kinds,
                           PluginStatus status = PluginStatus::available) {
  PluginRecord record;
  record.path = "/plugins/" + name + ".so";
  record.status = status;
  record.name = std::move(name);
  record.version = "1.0.0";
  record.kinds = std::move(kinds);
  return record;
}

/// fs.walk (source), fs.read, text.upper, text.grep (transforms), out.stdout, out.file (sinks), shell.run and
/// acme.tools.ping (tasks; a plugin name with a dot), and a refused plugin whose kinds must not count.
inline std::vector<PluginRecord> fake_plugins() {
  return {
      plugin("fs", {{"walk",
                     "source",
                     "files under a directory",
                     {param("root", "string", true), param("pattern", "string", false, "*"),
                      param("max_depth", "int", false, "16"), param("follow", "bool", false, "false")}},
                    {"read", "transform", "file contents", {param("encoding", "string", false, "utf-8")}}}),
      plugin("text", {{"upper", "transform", "upper case", {}},
                      {"grep",
                       "transform",
                       "lines matching",
                       {param("pattern", "string", true), param("invert", "bool", false, "false")}}}),
      plugin("out", {{"stdout", "sink", "print", {param("prefix", "string", false, "")}},
                     {"file",
                      "sink",
                      "write a file",
                      {param("path", "string", true), param("append", "bool", false, "false")}}}),
      plugin("shell", {{"run",
                        "task",
                        "run a command",
                        {param("command", "string", true), param("timeout_ms", "int", false, "0")}}}),
      plugin("acme.tools", {{"ping",
                             "task",
                             "ping a host",
                             {param("host", "string", true), param("count", "int", false, "3"),
                              param("ratio", "float", false, "0.5")}}}),
      plugin("broken", {{"thing", "source", "", {}}}, PluginStatus::refused),
  };
}

/// Options with the fake plugins, fixed variables and an environment holding only HOME=/home/test.
struct FakeOptions {
  std::vector<PluginRecord> records = fake_plugins();
  ConfigOptions options;
  FakeOptions() {
    options.variables = {{"input", "/data/in"}, {"workers", "3"}};
    options.environment = [](const std::string& name) -> std::optional<std::string> {
      if (name == "HOME") return "/home/test";
      return std::nullopt;
    };
    options.plugins = std::span<const PluginRecord>(records);
  }
  FakeOptions(const FakeOptions&) = delete;
  FakeOptions& operator=(const FakeOptions&) = delete;
};

}  // namespace taskhive::test
