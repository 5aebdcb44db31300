#pragma once
// The config layer: a YAML pipeline or workflow description read into plain structs, every value with the
// place it was written, and validated, with every problem reported at once as `FILE:LINE:COL: error:
// MESSAGE`. It knows nothing of TBB or of running anything: a builder turns a validated Config into a graph.
//
// @code
//   taskhive::ConfigOptions options;
//   options.variables = {{"input", "/data"}};             // --var input=/data; then the environment
//   options.plugins = registry.records();                 // optional: check kinds and params against plugins
//   auto result = taskhive::load_config("configs/wordcount.yaml", options);
//   std::cerr << taskhive::format_diagnostics(result.diagnostics);   // errors and warnings, by position
//   if (!result.ok()) return 2;
//   const taskhive::Config& config = result.config;
//   if (config.pipeline) build_pipeline(*config.pipeline);            // the stages, with params defaulted
//   std::cout << taskhive::print_config(config);                      // `validate --print`
// @endcode
//
// Reference for the format: docs/config.md. In short:
// - Durations are one or more <integer><unit> groups, unit ms, s, m or h, largest first: "100ms", "5s",
//   "2m", "1m30s"; "0" is zero. `none` is accepted where a duration may be absent (timeout,
//   rescan_interval) and is kept as zero.
// - `${name}` and `${name:-default}` in a scalar value are replaced by ConfigOptions::variables, else the
//   environment, else the default; unset without a default is an error. `$$` is a literal `$`. Keys are never
//   substituted.
// - Hostile input is refused before or while parsing, naming the limit hit (ConfigLimits).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "taskhive/diagnostics.hpp"
#include "taskhive/loader.hpp"

namespace taskhive {

/// Durations in a config have millisecond resolution.
using ConfigDuration = std::chrono::milliseconds;

/// A value and where it was written. `pos.known()` is false for a default the user did not write.
///
/// @code
///   if (stage.max_in_flight.pos.known()) note(stage.max_in_flight.pos, "set here");
///   std::size_t n = *stage.max_in_flight;
/// @endcode
template <class T>
struct Sourced {
  T value{};
  SourcePos pos{};

  const T& operator*() const noexcept { return value; }
  const T* operator->() const noexcept { return &value; }
};

/// Mirrors taskhive::QueueOrder without depending on the scheduler.
enum class ConfigOrder { aging, strict };
enum class OnError { fail, skip, dead_letter };
/// When a workflow task runs, given how its dependencies ended (like GitHub Actions' `if:`): `success` when
/// all succeeded, `failure` when at least one failed, `always` once they have all ended however they ended.
enum class RunIf { success, failure, always };

/// Stage concurrency as tbb::flow counts it: 0 is unlimited, 1 serial, N at most N at once.
inline constexpr std::size_t unlimited_concurrency = 0;
inline constexpr std::size_t serial_concurrency = 1;

struct SchedulerConfig {
  /// The most workers a config (or `taskhive run --workers`) may ask for.
  static constexpr unsigned max_workers = 4096;
  Sourced<unsigned> workers{0};  ///< 0: one per hardware thread (written `auto`); else 1 to max_workers
  Sourced<std::size_t> queue_capacity{100'000};
  Sourced<ConfigOrder> order{ConfigOrder::aging};
  SourcePos pos{};
};

/// Admission control in front of the scheduler; only in effect when the section is written.
struct BackpressureConfig {
  bool enabled = false;  ///< the section was written
  Sourced<std::int64_t> max_load{0};
  Sourced<ConfigDuration> cooldown{ConfigDuration(100)};
  Sourced<std::int64_t> low_watermark{0};  ///< filled in as max(1, max_load / 2) when not written
  SourcePos pos{};
};

struct PluginsConfig {
  /// As written; relative ones are relative to Config::directory (see Config::resolve).
  std::vector<Sourced<std::string>> dirs{};
  std::optional<Sourced<std::string>> allowlist{};
  Sourced<ConfigDuration> rescan_interval{};  ///< zero: never rescan (written `none`)
  Sourced<bool> probe{true};
  SourcePos pos{};
};

struct BackoffConfig {
  Sourced<ConfigDuration> initial{ConfigDuration(100)};
  Sourced<double> factor{2.0};
  Sourced<ConfigDuration> max{ConfigDuration(30'000)};
  Sourced<bool> jitter{true};
};

/// Mirrors taskhive::RetryPolicy: `limit` retries after the first failure.
struct RetryConfig {
  Sourced<int> limit{0};
  BackoffConfig backoff{};
};

/// `uses: plugin.kind`. The plugin name may itself hold dots: with plugin records the split is the one that
/// names a known plugin, else the last dot.
struct PluginRef {
  std::string plugin;
  std::string kind;
  SourcePos pos{};
  std::string text() const { return plugin + "." + kind; }
};

/// A parameter given to a plugin kind: always text, as it travels through the plugin ABI. With plugin records
/// the text is checked against the declared type and missing optional ones are added from their defaults.
struct ParamValue {
  std::string value;
  SourcePos pos{};      ///< of the value; unknown when defaulted
  SourcePos key_pos{};  ///< of the key
  bool defaulted = false;
};

using Params = std::map<std::string, ParamValue>;

struct Stage {
  Sourced<std::string> name{};
  PluginRef uses{};
  Params params{};
  Sourced<std::size_t> concurrency{serial_concurrency};  ///< unlimited_concurrency, serial_concurrency or N
  Sourced<std::size_t> max_in_flight{64};                ///< items inside the stage at once
  Sourced<int> priority{0};                              ///< flow-graph node priority, >= 0
  RetryConfig retry{};
  Sourced<ConfigDuration> timeout{};  ///< zero: none
  Sourced<OnError> on_error{OnError::fail};
  Sourced<std::string> dead_letter{};  ///< a sink's name, with on_error: dead_letter
  SourcePos pos{};
};

struct Pipeline {
  Stage source{};
  std::vector<Stage> stages{};
  std::vector<Stage> sinks{};  ///< written `sink:`, one stage or a list
  Sourced<bool> ordered{false};
  SourcePos pos{};
};

struct WorkflowTask {
  Sourced<std::string> name{};
  std::optional<PluginRef> uses{};  ///< a task kind; exactly one of uses and pipeline is set
  Params params{};
  std::optional<Pipeline> pipeline{};
  Sourced<std::string> pipeline_file{};  ///< as written when the pipeline came from a file; empty when inline
  std::vector<Sourced<std::string>> depends_on{};
  Sourced<int> priority{0};
  RetryConfig retry{};
  Sourced<ConfigDuration> timeout{};      ///< zero: none
  Sourced<RunIf> run_if{RunIf::success};  ///< written `if:`
  SourcePos pos{};
};

struct Workflow {
  std::vector<WorkflowTask> tasks{};
  SourcePos pos{};
};

/// A whole config: exactly one of pipeline and workflow is set once it validated.
struct Config {
  SchedulerConfig scheduler{};
  BackpressureConfig backpressure{};
  PluginsConfig plugins{};
  std::optional<Pipeline> pipeline{};
  std::optional<Workflow> workflow{};
  std::string file;                   ///< the name diagnostics use
  std::filesystem::path directory{};  ///< absolute; what relative paths in the config are relative to

  /// `path` made absolute against directory (an absolute one as is).
  std::filesystem::path resolve(const std::filesystem::path& path) const { return directory / path; }
};

/// Guards against hostile input; each is checked before or while parsing, and the error names it.
struct ConfigLimits {
  std::size_t max_bytes = 1 << 20;  ///< of one file, checked before it is parsed
  std::size_t max_nodes = 100'000;  ///< YAML nodes, counting every alias as the nodes it stands for
  std::size_t max_depth = 64;       ///< nesting of mappings and sequences
};

/// Looks a variable up in the environment; returns nothing when unset.
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string& name)>;

/// getenv(3).
std::optional<std::string> process_environment(const std::string& name);

struct ConfigOptions {
  /// `--var name=value`, looked up first.
  std::map<std::string, std::string> variables{};
  /// Looked up second; tests pass their own so they need not touch the real environment. Empty: none.
  EnvironmentLookup environment = process_environment;
  ConfigLimits limits{};
  /// The plugins available (refused records are skipped). When given, `uses` must name one of their kinds
  /// of the right type (source, transform, sink, task) and params are checked against its declaration; when
  /// not, kinds and params are only checked for form.
  std::optional<std::span<const PluginRecord>> plugins{};
};

/// The config (filled as far as it could be, even with errors) and everything found, sorted by position.
struct ConfigResult {
  Config config{};
  std::vector<Diagnostic> diagnostics{};

  /// No errors (warnings are fine).
  bool ok() const noexcept;
  std::size_t error_count() const noexcept;
};

/// Reads, parses and validates a config file. Diagnostics name the file as `file` was given, and relative
/// paths in it (plugin dirs, pipeline files) are relative to its directory.
ConfigResult load_config(const std::filesystem::path& file, const ConfigOptions& options = {});

/// The same for text in memory; `name` is the file name diagnostics use. Relative paths are relative to
/// `directory` (empty: the current directory).
ConfigResult load_config_string(std::string_view text, std::string name, const ConfigOptions& options = {},
                                const std::filesystem::path& directory = {});

/// The normalised YAML of a config, every default written out: keys in a fixed order, durations as
/// format_duration() writes them, variables substituted (a `$` in a value is written `$$`). A task's pipeline
/// from a file stays a reference to the file. Loading the output (from the same directory) gives a config
/// that prints the same text.
std::string print_config(const Config& config);

/// "1m30s", "100ms", "0s".
std::string format_duration(ConfigDuration duration);

/// Parses the duration format above (not `none`); nothing when malformed or over 8760h.
std::optional<ConfigDuration> parse_duration(std::string_view text);

/// Lowercase names as written in a config: "aging", "dead_letter", "always", ...
std::string_view to_string(ConfigOrder order) noexcept;
std::string_view to_string(OnError on_error) noexcept;
std::string_view to_string(RunIf run_if) noexcept;

}  // namespace taskhive
