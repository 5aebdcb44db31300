#include "scan.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <sys/stat.h>

#include <fmt/format.h>
#include <oneapi/tbb/flow_graph.h>

#include "taskhive/logging.hpp"
#include "taskhive/scheduler.hpp"

namespace taskhive::detail {

namespace {

namespace flow = tbb::flow;

// A candidate on its way through the graph.
struct Candidate {
  std::size_t index = 0;  // search order
  std::filesystem::path dir;
  std::shared_ptr<const std::optional<std::string>> dir_problem;
  bool to_probe = false;
  ScanResult result;
};
using CandidatePtr = std::shared_ptr<Candidate>;

std::vector<std::string> candidate_names(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  // Non-throwing steps: a directory that goes away or becomes unreadable mid-listing ends the listing (its
  // files are then missing from this scan) instead of throwing out of the scan graph. resolve_dirs() has
  // already refused a directory that cannot be listed at all.
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.starts_with('.') || !name.ends_with(".so")) continue;
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());  // name order, so search order does not depend on the file system
  return names;
}

// Why a plugin directory must not be trusted, or nothing.
std::optional<std::string> dir_problem(const std::filesystem::path& dir) {
  struct stat dir_stat {};
  if (stat(dir.c_str(), &dir_stat) != 0)
    return fmt::format("cannot stat its plugin directory: {}", std::strerror(errno));
  return directory_problem(dir_stat);
}

// The scan node's body: one candidate per call, directory by directory, entries in name order.
class DirectoryScan {
 public:
  explicit DirectoryScan(const std::vector<std::filesystem::path>& dirs) : dirs_(&dirs) {}

  CandidatePtr operator()(tbb::flow_control& control) {
    while (next_name_ == names_.size()) {
      if (next_dir_ == dirs_->size()) {
        control.stop();
        return nullptr;
      }
      dir_ = (*dirs_)[next_dir_++];
      names_ = candidate_names(dir_);
      next_name_ = 0;
      problem_ = std::make_shared<const std::optional<std::string>>(dir_problem(dir_));
    }
    auto candidate = std::make_shared<Candidate>();
    candidate->index = index_++;
    candidate->dir = dir_;
    candidate->dir_problem = problem_;
    candidate->result.record.path = dir_ / names_[next_name_++];
    return candidate;
  }

 private:
  const std::vector<std::filesystem::path>* dirs_;
  std::size_t next_dir_ = 0;
  std::filesystem::path dir_;
  std::vector<std::string> names_;
  std::size_t next_name_ = 0;
  std::shared_ptr<const std::optional<std::string>> problem_;
  std::size_t index_ = 0;
};

// Why a file with this digest is refused by the allowlist, or nothing (also when there is no allowlist).
std::optional<std::string> not_allowed(const std::string& sha256, const Allowlist* allowlist) {
  if (!allowlist || allowlist->digests.contains(sha256)) return std::nullopt;
  return fmt::format("sha256 {} is not in the allowlist {}", sha256, allowlist->path.string());
}

// Digest (unless already taken) and allowlist of the open, checked descriptor; false (with record.reason) if
// refused.
bool digest_allowed(const CheckedFile& file, PluginRecord& record, const Allowlist* allowlist,
                    std::optional<std::string> digest) {
  if (!digest) digest = sha256_hex(file.fd.get());
  if (!digest) {
    record.reason = fmt::format("cannot read: {}", std::strerror(errno));
    return false;
  }
  record.sha256 = std::move(*digest);
  auto refusal = not_allowed(record.sha256, allowlist);
  if (refusal) record.reason = std::move(*refusal);
  return !refusal;
}

// The prevalidate node: everything that reads the file but runs none of its code.
void prevalidate(Candidate& candidate, const ScanOptions& options) {
  ScanResult& result = candidate.result;
  PluginRecord& record = result.record;
  if (*candidate.dir_problem) {
    record.reason = **candidate.dir_problem;
    return;
  }
  auto check = check_candidate(record.path, candidate.dir);
  if (!check.file) {
    record.reason = std::move(check.reason);
    return;
  }
  struct stat st {};
  if (fstat(check.file->fd.get(), &st) != 0) {
    record.reason = fmt::format("cannot stat: {}", std::strerror(errno));
    return;
  }
  const ProbeCacheKey key = probe_cache_key(st);
  result.key = key;
  // What is recorded about the file (known to the caller, or in the probe cache) still holds if the key is
  // the same, or if only the ctime moved and the bytes hash to the recorded digest: a chmod, a hard link or
  // an extended attribute moves the ctime too, and must not count as a new version (in a catalog, a reload).
  // A record refused before it was hashed has no digest: the file is checked afresh. Hashed at most once.
  std::optional<std::string> digest;
  const auto still_holds = [&](const ProbeCacheKey& recorded, const std::string& sha256) {
    if (recorded == key) return true;
    if (!recorded.same_but_ctime(key) || sha256.empty()) return false;
    if (!digest) digest = sha256_hex(check.file->fd.get());
    return digest && *digest == sha256;
  };
  const KnownFile* known = options.known ? options.known(record.path) : nullptr;
  if (known && still_holds(known->key, known->record.sha256)) {
    result.unchanged = true;  // the caller still has it as it was: nothing more to do
    record = known->record;
    // Kept open in case the caller no longer has it (it lost a duplicate-name clash last time).
    if (record.status != PluginStatus::refused) result.file = std::move(check.file);
    return;
  }
  if (options.probes && options.cache) {
    const ProbeCacheEntry* hit = options.cache->find(record.path, key, options.probe_timeout);
    if (hit && still_holds(hit->key, hit->record.sha256)) {
      // Unchanged since it was probed: neither hashed nor probed here; its load verifies the digest.
      result.cache_hit = hit;
      const auto path = record.path;
      record = hit->record;
      record.path = path;
      if (auto refusal = not_allowed(record.sha256, options.allowlist)) {
        std::string sha256 = std::move(record.sha256);
        record = PluginRecord{};
        record.path = path;
        record.sha256 = std::move(sha256);
        record.reason = std::move(*refusal);
      } else if (record.status == PluginStatus::available) {
        result.file = std::move(check.file);
      }
      return;
    }
  }
  if (!digest_allowed(*check.file, record, options.allowlist, std::move(digest))) return;
  result.file = std::move(check.file);
  candidate.to_probe = options.probes != nullptr;
}

// The probe node: the descriptor read in a child process.
void probe(Candidate& candidate, const ScanOptions& options) {
  if (!candidate.to_probe) return;
  ScanResult& result = candidate.result;
  options.probes->probe(result.file->fd.get(), result.record);
  // A failure of the probe itself says nothing about the plugin: not cached, probed again next time.
  const std::string& reason = result.record.reason;
  if (!reason.starts_with("cannot start the plugin probe") && !reason.starts_with("plugin probe ")) {
    PluginRecord cached;
    cached.path = result.record.path;
    cached.status = result.record.status;
    cached.reason = result.record.reason;
    if (cached.status == PluginStatus::available) {
      cached.name = result.record.name;
      cached.version = result.record.version;
      cached.description = result.record.description;
      cached.kinds = result.record.kinds;
    }
    cached.sha256 = result.record.sha256;
    result.cache_update = ProbeCacheEntry{*result.key, std::move(cached), options.probe_timeout};
  }
  if (result.record.status != PluginStatus::available) result.file.reset();
}

// The dlopen node (no probe): load the checked bytes in this process.
void load_in_process(Candidate& candidate) {
  ScanResult& result = candidate.result;
  if (!result.file || result.unchanged) return;  // unchanged: the caller has it loaded (or loads it later)
  result.library = load_private_copy(result.file->fd.get(), result.record);
  result.file.reset();  // the library holds its private copy; the plugin file is not needed again
}

// The register node's duplicate-name check, in search order: the first plugin of a name wins.
class Registration {
 public:
  void operator()(ScanResult& result) {
    PluginRecord& record = result.record;
    result.undeduplicated = record;
    if (record.status != PluginStatus::refused) {
      const auto [winner, first] = winners_.try_emplace(record.name, record.status, record.path);
      if (!first) {
        record.reason = fmt::format("duplicate plugin name \"{}\": already {} from {}", record.name,
                                    to_string(winner->second.first), winner->second.second.string());
        record.status = PluginStatus::refused;
        record.loaded_at = {};
        result.library.reset();  // unloaded at once
        result.file.reset();
      }
    }
    if (record.status == PluginStatus::refused)
      logger()->debug("plugin {} refused: {}", record.path.string(), record.reason);
  }

 private:
  std::map<std::string, std::pair<PluginStatus, std::filesystem::path>, std::less<>> winners_;
};

}  // namespace

LoadResult<Allowlist> read_allowlist(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in)
    return LoadResult<Allowlist>::failure(
        fmt::format("cannot read the plugin allowlist {}: {}", path.string(), std::strerror(errno)));
  Allowlist list{path, {}};
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::string digest, name;
    if (!(fields >> digest)) continue;  // blank or comment
    std::transform(digest.begin(), digest.end(), digest.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    const bool hex = digest.size() == 64 && std::all_of(digest.begin(), digest.end(), [](char c) {
                       return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                     });
    if (!hex || !(fields >> name))
      return LoadResult<Allowlist>::failure(fmt::format(
          "{}:{}:1: error: expected \"SHA256 NAME\" (64 hex digits, a space, a name), as sha256sum "
          "prints",
          path.string(), number));
    list.digests.insert(digest);
  }
  return list;
}

LoadResult<std::vector<std::filesystem::path>> resolve_dirs(const std::vector<std::filesystem::path>& dirs) {
  using Result = LoadResult<std::vector<std::filesystem::path>>;
  std::vector<std::filesystem::path> resolved;
  for (const auto& dir : dirs) {
    std::error_code ec;
    const auto absolute = std::filesystem::absolute(dir, ec);
    const auto canonical = ec ? absolute : std::filesystem::canonical(absolute, ec);
    if (ec) return Result::failure(fmt::format("plugin directory {} does not exist", dir.string()));
    if (!std::filesystem::is_directory(canonical, ec))
      return Result::failure(fmt::format("plugin directory {} is not a directory", dir.string()));
    if (std::filesystem::directory_iterator listing(canonical, ec); ec) {
      return Result::failure(
          fmt::format("plugin directory {} cannot be listed: {}", dir.string(), ec.message()));
    }
    if (std::find(resolved.begin(), resolved.end(), canonical) == resolved.end())
      resolved.push_back(canonical);
  }
  return resolved;
}

void apply_to_cache(ProbeCache& cache, std::vector<ScanResult>& results) {
  for (const auto& result : results)
    if (result.cache_hit) cache.keep(result.cache_hit, *result.key);
  for (auto& result : results)
    if (result.cache_update) cache.put(*result.cache_update);
}

std::optional<std::string> run_scan(const LoaderOptions& options, const std::function<void()>& scan) {
  if (!options.scheduler) {
    scan();
    return std::nullopt;
  }
  // The design's "scan as a prioritized task": the scan graph runs in the scheduler's arena, ahead of
  // ordinary work.
  auto task = options.scheduler->submit(scan, {.name = "plugin-scan", .priority = options.scan_priority});
  if (task.wait() == TaskState::succeeded) return std::nullopt;
  return fmt::format("the plugin scan task {}: {}", to_string(task.state()), task.error());
}

std::size_t probe_concurrency() {
  // One probe child per core, up to 4: a probe is mostly a dlopen, CPU-bound; more children only compete.
  return std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
}

std::vector<ScanResult> scan_plugins(const ScanOptions& options) {
  std::vector<ScanResult> results;
  Registration registration;
  flow::graph graph;

  flow::input_node<CandidatePtr> scan(graph, DirectoryScan(options.dirs));
  flow::limiter_node<CandidatePtr, int> limiter(graph, kScanInFlight);
  flow::function_node<CandidatePtr, CandidatePtr> checks(graph, flow::unlimited, [&](CandidatePtr candidate) {
    prevalidate(*candidate, options);
    return candidate;
  });
  const bool probing = options.probes != nullptr;
  flow::function_node<CandidatePtr, CandidatePtr> load(
      graph, probing ? std::max<std::size_t>(1, options.probe_concurrency) : std::size_t{flow::serial},
      [&](CandidatePtr candidate) {
        if (probing)
          probe(*candidate, options);
        else
          load_in_process(*candidate);
        return candidate;
      });
  flow::sequencer_node<CandidatePtr> in_order(graph, [](const CandidatePtr& c) { return c->index; });
  flow::function_node<CandidatePtr, flow::continue_msg> enroll(
      graph, flow::serial, [&](CandidatePtr candidate) {
        registration(candidate->result);
        results.push_back(std::move(candidate->result));
        limiter.decrementer().try_put(1);
        return flow::continue_msg{};
      });

  flow::make_edge(scan, limiter);
  flow::make_edge(limiter, checks);
  flow::make_edge(checks, load);
  flow::make_edge(load, in_order);
  flow::make_edge(in_order, enroll);
  scan.activate();
  graph.wait_for_all();
  return results;
}

}  // namespace taskhive::detail
