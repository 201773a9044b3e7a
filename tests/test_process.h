// tests/test_process.h — running the programs built with the tests (the `vislang` binary, the
// examples) from a test: one way to start them, capture what they print and read their exit status.
//
//   run_vislang({"embed", "--model", m, "--text", "a dog"})   → RunResult {status, out, err}
//   start_vislang(args) → Process: running in the background (a server, a build to kill); out() and
//                          err() can be read while it runs; kill(sig), finished(), wait()
//
// posix_spawn, no shell: every argument reaches the program as it is (no quoting), and the test
// process's memory is not copied as fork() would (a parent holding 400 MB made each run 20 ms slower).
// stdout and stderr go to files in a scratch folder, so a chatty child never blocks on a full pipe.
// stdin is /dev/null.
// The child gets VISLANG_SHARED_DIR = test::shared_dir() (the shared folder the tests themselves use)
// when there is one, then RunOptions::env. A child that outlives RunOptions::timeout_s is killed and
// the test fails naming the command; a Process destroyed while its child runs (a failed REQUIRE) kills
// it, so no server is left behind.
// The programs live next to the test executable (<build>/bin, found through /proc/self/exe).
#pragma once
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"

extern char** environ;

namespace vislang::test {

// <build>/bin/<name>, the folder of this test executable; a failed REQUIRE names the target to build.
inline std::string built_program(const std::string& name) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  REQUIRE_MESSAGE(!ec, "cannot read /proc/self/exe: ", ec.message());
  const std::filesystem::path bin = self.parent_path() / name;
  REQUIRE_MESSAGE(std::filesystem::exists(bin), bin.string(), " not found: build the ",
                  name == "vislang" ? "vislang_cli" : name, " target");
  return bin.string();
}

struct RunOptions {
  std::vector<std::pair<std::string, std::string>> env;  // extra environment variables (name, value)
  std::string cwd;                                       // the child's working directory; "" = ours
  bool merge_stderr = false;                             // stderr into stdout, as `2>&1` does
  double timeout_s = 300;                                // wait(): longer → killed, the test fails
};

struct RunResult {
  std::string command;  // the program and its arguments, for messages
  int status = -1;      // exit status; 128 + signal when killed
  std::string out, err;

  std::string describe() const {
    return str("$ ", command, "\nexit ", status, "\n--- stdout:\n", out, "--- stderr:\n", err);
  }
  // The non-empty lines of stdout.
  std::vector<std::string> lines() const {
    std::vector<std::string> v;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) v.push_back(l);
    return v;
  }
  // One JSON value per non-empty line of stdout; a line that is not JSON fails the test.
  std::vector<nlohmann::json> jsonl() const {
    std::vector<nlohmann::json> rows;
    for (const std::string& l : lines()) {
      try {
        rows.push_back(nlohmann::json::parse(l));
      } catch (const std::exception& e) {
        FAIL(str("not a JSON line: ", l, " (", e.what(), ")\n", describe()));
      }
    }
    return rows;
  }
};

// A program started in the background, its stdout / stderr captured to files.
class Process {
 public:
  Process(const std::string& program, const std::vector<std::string>& args, const RunOptions& o)
      : files_(std::make_unique<TempDir>("vislang_run")), timeout_s_(o.timeout_s) {
    const std::string bin = built_program(program);
    command_ = bin;
    for (const std::string& a : args) command_ += " " + a;
    std::vector<std::pair<std::string, std::string>> set;
    if (!shared_dir().empty()) set.emplace_back("VISLANG_SHARED_DIR", shared_dir());
    set.insert(set.end(), o.env.begin(), o.env.end());
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    for (const auto& [name, value] : set) {
      const std::string prefix = name + "=";
      env_strings.erase(std::remove_if(env_strings.begin(), env_strings.end(),
                                       [&](const std::string& kv) { return kv.compare(0, prefix.size(), prefix) == 0; }),
                        env_strings.end());
      env_strings.push_back(prefix + value);
    }
    std::vector<char*> argv{const_cast<char*>(bin.c_str())}, envp;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int out = ::open(out_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err = o.merge_stderr ? out : ::open(err_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE_MESSAGE((out >= 0 && err >= 0 && in >= 0), "cannot open the capture files in ", files_->dir().string());
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_adddup2(&fa, err, 2);
    if (!o.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, o.cwd.c_str());
    const int rc = ::posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(in);
    ::close(out);
    if (err != out) ::close(err);
    if (rc != 0) pid_ = -1;
    REQUIRE_MESSAGE(rc == 0, "cannot start ", command_, (o.cwd.empty() ? "" : " in " + o.cwd), ": ",
                    std::string(std::strerror(rc)));
  }
  Process(Process&& o) noexcept
      : files_(std::move(o.files_)), timeout_s_(o.timeout_s_), command_(std::move(o.command_)), pid_(o.pid_),
        status_(o.status_) {
    o.pid_ = -1;  // the child is ours now
  }
  Process& operator=(Process&&) = delete;
  ~Process() {
    if (pid_ > 0 && !finished()) {
      ::kill(pid_, SIGKILL);
      reap(0);
    }
  }

  pid_t pid() const { return pid_; }
  const std::string& command() const { return command_; }
  std::string out() const { return slurp(out_path()); }  // what it printed so far
  std::string err() const { return slurp(err_path()); }  // "" with merge_stderr
  void kill(int sig = SIGKILL) const {
    if (pid_ > 0 && status_ < 0) ::kill(pid_, sig);
  }
  // Whether it has ended (reaped without blocking).
  bool finished() { return status_ >= 0 || reap(WNOHANG); }
  // Its exit status (128 + signal when killed), once it ends; past the timeout it is killed and the
  // test fails. A pidfd (Linux >= 5.3) becomes readable when the child ends: one blocking poll() waits
  // for that or the deadline. Without one, the child is looked at every 10 ms.
  int wait() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
    if (finished()) return status_;
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    while (!finished()) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        if (pidfd >= 0) ::close(pidfd);
        kill(SIGKILL);
        reap(0);
        FAIL(str(command_, "\nstill running after ", timeout_s_, " s: killed\n--- stdout so far:\n", out(),
                 "--- stderr so far:\n", err()));
      }
      if (pidfd >= 0) {
        pollfd p{pidfd, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
      } else {
        std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(left, std::chrono::milliseconds(10)));
      }
    }
    if (pidfd >= 0) ::close(pidfd);
    return status_;
  }
  // wait(), then what it printed.
  RunResult result() {
    RunResult r;
    r.status = wait();
    r.command = command_;
    r.out = out();
    r.err = err();
    return r;
  }

 private:
  std::string out_path() const { return files_->path("stdout"); }
  std::string err_path() const { return files_->path("stderr"); }
  // waitpid with `flags`; true (status_ set) when the child was reaped.
  bool reap(int flags) {
    int st = 0;
    pid_t got;
    while ((got = ::waitpid(pid_, &st, flags)) < 0 && errno == EINTR) {
    }
    if (got != pid_) return false;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return true;
  }

  std::unique_ptr<TempDir> files_;  // stdout, stderr
  double timeout_s_;
  std::string command_;
  pid_t pid_ = -1;
  int status_ = -1;
};

// <build>/bin/<program> ARGS in the background.
inline Process start_program(const std::string& program, const std::vector<std::string>& args,
                             const RunOptions& o = {}) {
  return Process(program, args, o);
}
inline Process start_vislang(const std::vector<std::string>& args, const RunOptions& o = {}) {
  return start_program("vislang", args, o);
}
// <build>/bin/<program> ARGS to the end.
inline RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                             const RunOptions& o = {}) {
  return start_program(program, args, o).result();
}
inline RunResult run_vislang(const std::vector<std::string>& args, const RunOptions& o = {}) {
  return run_program("vislang", args, o);
}

}  // namespace vislang::test
