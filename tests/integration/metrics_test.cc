// Monitoring end to end: a real Prometheus server scrapes a coordinator and
// two workers during a harvest through teacher-sim, and every query shipped
// in deploy/ (the Grafana dashboard's and the alert rules') must parse and
// return data. Read from the shipped files, so a broken query fails here.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "common/job/job_state.h"
#include "nlohmann/json.hpp"
#include "tests/testing/cluster.h"
#include "tests/testing/jsonl.h"
#include "yaml-cpp/yaml.h"

namespace distillery::testing {
namespace {

using nlohmann::json;

const char* PrometheusBinary() {
  const char* env = std::getenv("DISTILLERY_PROMETHEUS");
  return env ? env : "/usr/bin/prometheus";
}

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET with libcurl (Prometheus answers large bodies chunked).
std::string CurlGet(const std::string& url, long* status = nullptr) {
  CURL* curl = curl_easy_init();
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  long code = 0;
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  } else {
    body.clear();
  }
  if (status) *status = code;
  curl_easy_cleanup(curl);
  return body;
}

std::string UrlEncode(const std::string& text) {
  CURL* curl = curl_easy_init();
  char* escaped =
      curl_easy_escape(curl, text.data(), static_cast<int>(text.size()));
  std::string out = escaped;
  curl_free(escaped);
  curl_easy_cleanup(curl);
  return out;
}

// Grafana's variables as Grafana would expand them for "All jobs".
std::string ExpandGrafanaVariables(std::string expr) {
  for (auto [from, to] : {std::pair{"$__rate_interval", "1m"},
                          std::pair{"${job_id}", ".*"},
                          std::pair{"$job_id", ".*"}}) {
    for (size_t at; (at = expr.find(from)) != std::string::npos;) {
      expr.replace(at, std::string(from).size(), to);
    }
  }
  return expr;
}

// Every "expr" of the dashboard's panels (rows included) and the template
// variables' queries, turned into PromQL.
std::vector<std::string> DashboardQueries(const json& dashboard) {
  std::vector<std::string> out;
  std::function<void(const json&)> walk = [&](const json& panels) {
    for (const json& panel : panels) {
      if (panel.contains("panels")) walk(panel.at("panels"));
      if (!panel.contains("targets")) continue;
      for (const json& target : panel.at("targets")) {
        out.push_back(target.at("expr").get<std::string>());
      }
    }
  };
  walk(dashboard.at("panels"));
  static const std::regex kLabelValues(
      R"(^label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)$)");
  for (const json& var : dashboard.at("templating").at("list")) {
    if (var.at("type") != "query") continue;
    const std::string q = var.at("definition").get<std::string>();
    std::smatch m;
    EXPECT_TRUE(std::regex_match(q, m, kLabelValues))
        << "template variable query not understood by this test: " << q;
    if (!m.empty()) out.push_back("count by (" + m[2].str() + ") (" +
                                  m[1].str() + ")");
  }
  return out;
}

struct AlertRule {
  std::string name;
  std::string expr;
  std::string signal;  // expr without its final comparison
};

std::vector<AlertRule> AlertRules(const std::string& path) {
  static const std::regex kFinalComparison(
      R"(^([\s\S]*\S)\s*(>|<|>=|<=|==|!=)\s*(bool\s+)?-?[0-9.]+(e[+-]?[0-9]+)?\s*$)");
  std::vector<AlertRule> out;
  YAML::Node root = YAML::LoadFile(path);
  for (const YAML::Node& group : root["groups"]) {
    for (const YAML::Node& rule : group["rules"]) {
      if (!rule["alert"]) continue;
      AlertRule r;
      r.name = rule["alert"].as<std::string>();
      r.expr = rule["expr"].as<std::string>();
      std::smatch m;
      EXPECT_TRUE(std::regex_match(r.expr, m, kFinalComparison))
          << r.name << ": expr must end in a comparison with a number: "
          << r.expr;
      r.signal = m.empty() ? r.expr : m[1].str();
      out.push_back(std::move(r));
    }
  }
  return out;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    dir_ = MakeTempDir("metrics");
  }
  void TearDown() override {
    workers_.clear();
    coordinator_.reset();
    prometheus_.reset();
    sim_.reset();
    failing_sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // Runs an instant query; returns the "data.result" array, or null with
  // the failure in *error.
  json Query(const std::string& promql, std::string* error) {
    long status = 0;
    const std::string body =
        CurlGet("http://" + prometheus_address_ +
                    "/api/v1/query?query=" + UrlEncode(promql),
                &status);
    json reply = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (reply.is_discarded() || reply.value("status", "") != "success") {
      *error = "HTTP " + std::to_string(status) + ": " + body;
      return nullptr;
    }
    return reply.at("data").at("result");
  }

  // Polls until `promql` returns data (rates need a few scrapes), for up to
  // `seconds`. Returns "" or what went wrong.
  std::string ExpectData(const std::string& promql, int seconds = 20) {
    std::string error;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (true) {
      error.clear();
      json result = Query(promql, &error);
      if (!error.empty()) return error;  // a parse error will not go away
      if (result.is_array() && !result.empty()) return "";
      if (std::chrono::steady_clock::now() >= deadline) return "no data";
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }

  // Polls until `promql` returns one value that `accept` takes, for up to
  // `seconds`. Returns "" or the last value seen with the scrape health of
  // every target, to tell a slow scrape from a wrong figure.
  std::string ExpectValue(const std::string& promql,
                          const std::function<bool(double)>& accept,
                          int seconds = 30) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    std::string last = "no data";
    while (true) {
      std::string error;
      const json result = Query(promql, &error);
      if (!error.empty()) return error;
      if (result.is_array() && result.size() == 1) {
        const std::string text = result[0].at("value")[1].get<std::string>();
        if (accept(std::stod(text))) return "";
        last = "value " + text;
      } else {
        last = "result " + result.dump();
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    std::string error;
    const json health = Query("up or scrape_duration_seconds", &error);
    return last + "; targets: " + health.dump() + error;
  }

  CommandResult Cli(std::vector<std::string> args) {
    return RunCli(coordinator_address_, std::move(args), dir_);
  }

  std::string dir_, sim_address_, coordinator_address_, prometheus_address_;
  std::unique_ptr<Process> sim_, failing_sim_, coordinator_, prometheus_;
  std::vector<std::unique_ptr<Process>> workers_;
};

TEST_F(MetricsTest, EveryShippedQueryParsesAndReturnsData) {
  ASSERT_TRUE(std::filesystem::exists(PrometheusBinary()))
      << "the Prometheus server (" << PrometheusBinary()
      << ") is missing: this test needs it. Install it with "
         "`scripts/install-deps.sh test` (Debian package `prometheus`).";
  const std::string source = DISTILLERY_SOURCE_DIR;
  const json dashboard = json::parse(
      ReadFile(source + "/deploy/grafana/dashboards/distillery.json"));
  const std::vector<std::string> dashboard_queries = DashboardQueries(dashboard);
  const std::string rules_file = source + "/deploy/prometheus/alerts.yml";
  const std::vector<AlertRule> rules = AlertRules(rules_file);
  ASSERT_GE(dashboard_queries.size(), 20u);
  ASSERT_GE(rules.size(), 5u);

  // A teacher that fails a tenth of its requests (500 or 429), so error,
  // retry and dead-letter series are real, and one no worker serves (its key
  // is not set), so one job stays running.
  sim_ = SpawnTeacherSim(
      dir_, {"--latency-ms", "5", "--error-rate", "0.1", "--seed", "7"},
      &sim_address_);
  ASSERT_FALSE(sim_address_.empty()) << sim_->Stderr();
  // A second teacher-sim that fails every request: with one attempt a task,
  // its jobs end FAILED.
  std::string failing_address;
  failing_sim_ = SpawnTeacherSim(dir_, {"--latency-ms", "1", "--fault-rates",
                                        "500=1"},
                                 &failing_address);
  ASSERT_FALSE(failing_address.empty()) << failing_sim_->Stderr();
  const std::string teachers = dir_ + "/teachers.yaml";
  WriteFile(teachers,
            "teachers:\n" +
                SimTeacherProfile(failing_address, "failing",
                                  "    max_attempts: 1\n") +
                SimTeacherProfile(sim_address_) +
                "    max_concurrency: 8\n    max_attempts: 2\n"
                "    rpm: 600000\n    tpm: 100000000\n"
                "    pricing:\n      \"*\": {input: 0.5, output: 2.0}\n"
                "  - name: offline\n    api: openai\n"
                "    base_url: http://127.0.0.1:9/v1\n"
                "    api_key_env: DISTILLERY_METRICS_TEST_UNSET_KEY\n"
                "    rpm: 60\n    tpm: 100000\n");

  const int coordinator_metrics = PickFreePort();
  coordinator_ =
      SpawnCoordinator(dir_, "127.0.0.1:0", dir_ + "/data", teachers,
                       {"--heartbeat-ms", "300", "--metrics-listen",
                        "127.0.0.1:" + std::to_string(coordinator_metrics),
                        "--log-format", "json"});
  coordinator_address_ = coordinator_->WaitForAddress();
  ASSERT_FALSE(coordinator_address_.empty()) << coordinator_->Stderr();
  std::vector<int> worker_metrics;
  for (int i = 0; i < 2; ++i) {
    worker_metrics.push_back(PickFreePort());
    workers_.push_back(
        SpawnWorker(dir_, coordinator_address_, teachers,
                    {"--name", "w" + std::to_string(i), "--metrics-listen",
                     "127.0.0.1:" + std::to_string(worker_metrics.back()),
                     "--log-format", "json"}));
  }

  // Prometheus on loopback with a scrape interval of 1 s and the shipped
  // rules, scraping under the job names the shipped queries select on.
  const int prometheus_port = PickFreePort();
  prometheus_address_ = "127.0.0.1:" + std::to_string(prometheus_port);
  std::string workers_targets;
  for (int port : worker_metrics) {
    workers_targets += "'127.0.0.1:" + std::to_string(port) + "',";
  }
  const std::string config = dir_ + "/prometheus.yml";
  WriteFile(config,
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files: ['" +
                rules_file +
                "']\n"
                "scrape_configs:\n"
                "  - job_name: distillery-coordinator\n"
                "    static_configs: [{targets: ['127.0.0.1:" +
                std::to_string(coordinator_metrics) +
                "']}]\n"
                "  - job_name: distillery-worker\n"
                "    static_configs: [{targets: [" +
                workers_targets + "]}]\n");
  prometheus_ = std::make_unique<Process>(
      PrometheusBinary(),
      std::vector<std::string>{
          "--config.file=" + config, "--storage.tsdb.path=" + dir_ + "/tsdb",
          "--web.listen-address=" + prometheus_address_, "--log.level=warn"},
      dir_);
  bool ready = false;
  for (int i = 0; i < 300 && !ready && prometheus_->Running(); ++i) {
    ready = CurlGet("http://" + prometheus_address_ + "/-/ready")
                .find("Ready") != std::string::npos;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(ready) << prometheus_->Stderr();

  // The harvest: a job, the same prompts again (all from the cache), an
  // export, and a job for the teacher nobody serves.
  const std::string prompts = dir_ + "/prompts.jsonl";
  WriteFile(prompts, DistinctPrompts(600, "metrics"));
  std::vector<std::string> jobs;
  for (const std::string teacher : {"sim", "sim", "offline"}) {
    CommandResult r = Cli({"submit", prompts, "--teacher", teacher, "--model",
                           "sim-reasoner", "--max-tokens", "200"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    jobs.push_back(r.out.substr(0, r.out.find('\n')));
    if (teacher == "sim") {
      // Completed, perhaps with dead letters (a tenth of requests fail).
      CommandResult watch = Cli({"watch", jobs.back()});
      ASSERT_TRUE(watch.exit_code == 0 || watch.exit_code == 4)
          << watch.exit_code << watch.out << watch.err;
    }
  }
  CommandResult exported =
      Cli({"export", jobs[0], "--out", dir_ + "/out.jsonl"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const json status = json::parse(Cli({"status", jobs[0], "--json"}).out);
  EXPECT_GT(status.at("cost_usd").get<double>(), 0);

  // Every target up before judging queries.
  EXPECT_EQ(ExpectData("count(up == 1) == 3"), "");

  for (const std::string& raw : dashboard_queries) {
    const std::string q = ExpandGrafanaVariables(raw);
    EXPECT_EQ(q.find('$'), std::string::npos)
        << "unexpanded Grafana variable in: " << raw;
    EXPECT_EQ(ExpectData(q), "") << "dashboard query: " << q;
  }
  for (const AlertRule& rule : rules) {
    std::string error;
    Query(rule.expr, &error);
    EXPECT_EQ(error, "") << rule.name << ": " << rule.expr;
    EXPECT_EQ(ExpectData(rule.signal), "")
        << rule.name << " signal: " << rule.signal;
  }

  // Prometheus loaded and evaluated every rule without error.
  const json loaded = json::parse(
      CurlGet("http://" + prometheus_address_ + "/api/v1/rules"));
  std::set<std::string> healthy;
  for (const json& group : loaded.at("data").at("groups")) {
    for (const json& rule : group.at("rules")) {
      EXPECT_NE(rule.value("health", ""), "err") << rule.dump();
      healthy.insert(rule.at("name").get<std::string>());
    }
  }
  EXPECT_EQ(healthy.size(), rules.size());

  // The figures agree with the harvest: two jobs of 600 tasks settled, the
  // second from the cache except the first one's dead letters. Prometheus
  // sees the processes a scrape late (later on a loaded machine, where a
  // scrape can take seconds), so each figure is awaited, not read once.
  EXPECT_EQ(ExpectValue("sum(distillery_tasks_settled_total)",
                        [](double v) { return v == 1200; }),
            "");
  EXPECT_EQ(
      ExpectValue("sum(distillery_tasks_settled_total{outcome=\"cache_hit\"})",
                  [](double v) { return v >= 550; }),
      "");
  EXPECT_EQ(ExpectValue("sum(distillery_job_tasks{state=\"pending\"})",
                        [](double v) { return v == 600; }),
            "");
  EXPECT_EQ(ExpectValue("max(distillery_workers_live)",
                        [](double v) { return v == 2; }),
            "");
  // The job of the teacher no worker serves says so, and its alert fires.
  EXPECT_EQ(ExpectValue("max(distillery_teacher_live_workers{teacher=\"offline\"})",
                        [](double v) { return v == 0; }),
            "");
  EXPECT_EQ(ExpectValue("max(distillery_teacher_live_workers{teacher=\"sim\"})",
                        [](double v) { return v == 2; }),
            "");
  EXPECT_EQ(ExpectValue("max(distillery_job_state{state=\"paused\"}) * 0",
                        [](double v) { return v == 0; }),
            "");
  bool no_live_worker_rule = false;
  for (const AlertRule& rule : rules) {
    if (rule.name != "DistilleryTeacherHasNoLiveWorker") continue;
    no_live_worker_rule = true;
    EXPECT_EQ(ExpectValue(rule.expr, [](double v) { return v == 1; }), "")
        << rule.expr;
  }
  EXPECT_TRUE(no_live_worker_rule);
  // The budget: sim's limit in force is at most its configured 600,000 a
  // minute (lower once 429s taught it), and its 8 concurrent requests were
  // shared out among the two workers while they had demand.
  EXPECT_EQ(ExpectValue("max(distillery_teacher_effective_requests_per_minute"
                        "{teacher=\"sim\"})",
                        [](double v) { return v > 0 && v <= 600000; }),
            "");
  EXPECT_EQ(ExpectValue("sum(max_over_time(distillery_worker_share_concurrency"
                        "{teacher=\"sim\"}[5m]))",
                        [](double v) { return v >= 1 && v <= 16; }),
            "");
  EXPECT_EQ(ExpectValue("max(distillery_teacher_paused{teacher=\"sim\"})",
                        [](double v) { return v == 0; }),
            "");

  // Every job state, from the one definition (common/job/job_state.h), in
  // distillery_job_state, in `status` and in `distillery jobs`: a job in
  // each state a user can see (SUBMITTING never is), including one paused
  // at its budget, which once had no series.
  std::map<v1::JobState, std::string> job_in;
  job_in[v1::JOB_STATE_COMPLETED] = jobs[0];
  job_in[v1::JOB_STATE_RUNNING] = jobs[2];  // its teacher has no worker
  auto submit = [&](const std::string& teacher, const std::string& tag,
                    std::vector<std::string> extra) {
    WriteFile(dir_ + "/" + tag + ".jsonl", DistinctPrompts(5, tag));
    std::vector<std::string> args = {"submit", dir_ + "/" + tag + ".jsonl",
                                     "--teacher", teacher, "--model",
                                     "sim-reasoner", "--max-tokens", "200"};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return LastLine(r.out);
  };
  job_in[v1::JOB_STATE_PAUSED] =
      submit("sim", "budgeted", {"--budget-usd", "0.000001"});
  EXPECT_EQ(Cli({"watch", job_in[v1::JOB_STATE_PAUSED]}).exit_code, 3);
  job_in[v1::JOB_STATE_FAILED] = submit("failing", "doomed", {});
  EXPECT_EQ(Cli({"watch", job_in[v1::JOB_STATE_FAILED]}).exit_code, 5);
  job_in[v1::JOB_STATE_CANCELLED] = submit("offline", "cancelled", {});
  EXPECT_EQ(Cli({"cancel", job_in[v1::JOB_STATE_CANCELLED]}).exit_code, 0);
  std::set<v1::JobState> visible(AllJobStates().begin(), AllJobStates().end());
  visible.erase(v1::JOB_STATE_SUBMITTING);
  std::set<v1::JobState> covered;
  for (const auto& [state, id] : job_in) covered.insert(state);
  EXPECT_EQ(covered, visible) << "a job state this test does not show";
  const std::string listed = Cli({"jobs"}).out;
  for (const auto& [state, id] : job_in) {
    const std::string& name = JobStateName(state);
    const std::string series =
        "distillery_job_state{job_id=\"" + id + "\",state=\"" + name + "\"}";
    EXPECT_EQ(ExpectValue(series, [](double v) { return v == 1; }), "")
        << series;
    // One series a state, and the job in exactly one of them.
    EXPECT_EQ(ExpectValue("count(distillery_job_state{job_id=\"" + id + "\"})",
                          [](double v) {
                            return v == static_cast<double>(
                                            AllJobStates().size());
                          }),
              "")
        << id;
    EXPECT_EQ(ExpectValue("sum(distillery_job_state{job_id=\"" + id + "\"})",
                          [](double v) { return v == 1; }),
              "")
        << id;
    const json shown = json::parse(Cli({"status", id, "--json"}).out);
    EXPECT_EQ(shown.at("state"), name) << id;
    std::string listed_state;  // `distillery jobs`: JOB STATE ...
    std::istringstream rows(listed);
    for (std::string row; std::getline(rows, row);) {
      std::istringstream fields(row);
      std::string first, second;
      if (fields >> first >> second && first == id) listed_state = second;
    }
    EXPECT_EQ(listed_state, name) << id << " in:\n" << listed;
  }

  // Logs are one JSON object a line.
  std::istringstream log(coordinator_->Stderr());
  int lines = 0;
  for (std::string line; std::getline(log, line); ++lines) {
    EXPECT_FALSE(json::parse(line, nullptr, false).is_discarded()) << line;
  }
  EXPECT_GT(lines, 0);
}

}  // namespace
}  // namespace distillery::testing
