// "pipetest": a plugin whose kinds the pipeline tests steer through their params.
//   source "count":     emits "0", "1", ... "n-1" (n: param, default 10), `per_call` per call (default 1);
//                       `error_at` makes the call for that number fail instead (the source goes on
//                       afterwards); `started_file` is created at the first call
//   transform "tag":    emits "<prefix><item>"; `fail_on`: an item with that text fails; `fail_times`: each
//                       item fails that many times before it succeeds (counted per item text, process-wide,
//                       under a mutex); `split`: emits the item this many times; `slow_below`: items whose
//                       number is below it busy-wait a little, so a parallel stage finishes them late; a
//                       negative split is refused at create(); `null_value`: emits its item with a metadata
//                       value that is NULL, which the host must refuse (through the C ABI, without throwing)
//   sink "collect":     appends each item as a line to `path` at flush or finish ("bytes" or, with
//                       metadata=true, "bytes|key=value|..."); `fail_on`: consuming that item fails;
//                       `slow_ms`: each call takes at least that long; `consumed_counter`: the address (hex)
//                       of the test's std::atomic<int>, incremented after each item taken in (the plugin
//                       runs in the test's process)
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <taskhive/plugin.hpp>

namespace {

namespace plugin = taskhive::plugin;

class Count {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"n", TASKHIVE_PARAM_INT, 0, "10", "how many items"},
      {"error_at", TASKHIVE_PARAM_INT, 0, "-1", "the number whose call fails"},
      {"started_file", TASKHIVE_PARAM_STRING, 0, "", "a file created at the first call"},
      {"per_call", TASKHIVE_PARAM_INT, 0, "1", "items emitted by each call"}};
  explicit Count(const plugin::Params& params)
      : n_(std::stoll(params.get_or("n", "10"))),
        error_at_(std::stoll(params.get_or("error_at", "-1"))),
        per_call_(params.get_int("per_call", 1, 1, 1'000'000)),
        started_file_(params.get_or("started_file", "")) {}
  bool process(plugin::Emitter& emit) {
    if (next_ == 0 && !started_file_.empty()) std::ofstream{started_file_};
    if (next_ >= n_) return false;
    for (long long i = 0; i < per_call_ && next_ < n_; ++i) {
      const long long number = next_++;
      if (number == error_at_) throw std::runtime_error("cannot read item " + std::to_string(number));
      emit(std::to_string(number), {{"number", std::to_string(number).c_str()}});
    }
    return true;
  }

 private:
  long long n_, error_at_, per_call_, next_ = 0;
  std::string started_file_;
};

std::mutex failures_mutex;
std::map<std::string, int> failures;  // per item text: failures so far

class Tag {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"prefix", TASKHIVE_PARAM_STRING, 0, "", "put before each item"},
      {"fail_on", TASKHIVE_PARAM_STRING, 0, "", "an item text that fails"},
      {"fail_times", TASKHIVE_PARAM_INT, 0, "0", "failures of each item before it succeeds"},
      {"split", TASKHIVE_PARAM_INT, 0, "1", "copies of each item"},
      {"slow_below", TASKHIVE_PARAM_INT, 0, "0", "items numbered below this are slow"},
      {"null_value", TASKHIVE_PARAM_BOOL, 0, "false", "emit a NULL metadata value"}};
  explicit Tag(const plugin::Params& params)
      : prefix_(params.get_or("prefix", "")),
        fail_on_(params.get_or("fail_on", "")),
        fail_times_(std::stoi(params.get_or("fail_times", "0"))),
        split_(std::stoi(params.get_or("split", "1"))),
        slow_below_(std::stoi(params.get_or("slow_below", "0"))),
        null_value_(params.get_or("null_value", "false") == "true") {
    if (split_ < 0) throw plugin::Error(TASKHIVE_ERR_INVALID_PARAM, "split must be 0 or more");
  }
  void process(const plugin::Item& in, plugin::Emitter& emit) {
    const std::string text(in.text());
    if (!fail_on_.empty() && text == fail_on_) throw std::runtime_error("told to fail on " + text);
    if (fail_times_ > 0) {
      std::lock_guard lock(failures_mutex);
      if (failures[prefix_ + text]++ < fail_times_) throw std::runtime_error("flaky on " + text);
    }
    const auto number = in.metadata().get("number");
    if (number && std::stoi(std::string(*number)) < slow_below_) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    if (null_value_) emit(prefix_ + text, {{"broken", nullptr}});
    for (int i = 0; i < split_; ++i) emit(prefix_ + text, in.metadata());
  }

 private:
  std::string prefix_, fail_on_;
  int fail_times_, split_, slow_below_;
  bool null_value_;
};

class Collect {
 public:
  static constexpr taskhive_param_decl parameters[] = {
      {"path", TASKHIVE_PARAM_STRING, 1, nullptr, "the file to append to"},
      {"metadata", TASKHIVE_PARAM_BOOL, 0, "false", "write metadata too"},
      {"fail_on", TASKHIVE_PARAM_STRING, 0, "", "an item text whose consumption fails"},
      {"slow_ms", TASKHIVE_PARAM_INT, 0, "0", "each call takes at least this long"},
      {"consumed_counter", TASKHIVE_PARAM_STRING, 0, "", "address of a std::atomic<int> to count items in"}};
  explicit Collect(const plugin::Params& params)
      : path_(params.get_or("path", "")),
        metadata_(params.get_or("metadata", "false") == "true"),
        fail_on_(params.get_or("fail_on", "")),
        slow_(std::chrono::milliseconds(std::stoi(params.get_or("slow_ms", "0")))) {
    const auto counter = params.get_or("consumed_counter", "");
    if (!counter.empty())
      consumed_ = reinterpret_cast<std::atomic<int>*>(std::stoull(counter, nullptr, 16));  // NOLINT
  }
  void process(const plugin::Item& in) {
    if (slow_.count() > 0) std::this_thread::sleep_for(slow_);  // a sink that overruns its timeout, always
    std::string line(in.text());
    if (!fail_on_.empty() && line == fail_on_) throw std::runtime_error("sink told to fail on " + line);
    if (metadata_)
      for (const auto& kv : in.metadata().pairs()) line += std::string("|") + kv.key + "=" + kv.value;
    lines_.push_back(std::move(line));
    if (consumed_) consumed_->fetch_add(1);
  }
  void flush() {
    if (lines_.empty()) return;
    std::ofstream out(path_, std::ios::app);
    if (!out) throw std::runtime_error("cannot open " + path_);
    for (const auto& line : lines_) out << line << '\n';
    lines_.clear();
  }
  void finish() {
    std::ofstream out(path_, std::ios::app);
    if (!out) throw std::runtime_error("cannot open " + path_);
    for (const auto& line : lines_) out << line << '\n';
  }

 private:
  std::string path_;
  bool metadata_;
  std::string fail_on_;
  std::chrono::milliseconds slow_;
  std::vector<std::string> lines_;
  std::atomic<int>* consumed_ = nullptr;
};

}  // namespace

TASKHIVE_PLUGIN("pipetest", "1.0.0", "kinds for the pipeline tests",
                plugin::source<Count>("count", "numbers"), plugin::transform<Tag>("tag", "prefixes items"),
                plugin::sink<Collect>("collect", "writes items to a file"));
