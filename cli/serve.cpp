// cli/serve.cpp — `vislang serve --db PATH [--host 127.0.0.1] [--port 8080]`: the search page and its
// JSON API (search/server.h, docs/server.md) over an index DB, until Ctrl-C / SIGTERM.
//
// The model is the one the DB was built with (or --model, which must be the same model); its
// tokenizer enables text queries and zero-shot labelling (without one, only image queries work).
#include <signal.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "cli/clip_common.h"
#include "cli/commands.h"
#include "cli/search_common.h"

using namespace vislang;
using namespace vislang::cli;

namespace vislang::cli {

namespace {
// Set by SIGINT/SIGTERM, whichever thread takes the signal (OpenMP workers started before the server
// do not block it, so a handler is used rather than sigwait); a watcher thread turns it into stop().
volatile std::sig_atomic_t g_stop_requested = 0;
extern "C" void request_stop(int) { g_stop_requested = 1; }
}  // namespace

int serve_until_signal(std::shared_ptr<search::SearchEngine> engine, const search::ServerOptions& opt,
                       const std::string& command) {
  search::SearchServer server(engine, opt);
  server.bind();
  struct sigaction sa {};
  sa.sa_handler = request_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load()) {
      if (g_stop_requested) {
        server.stop();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const search::IndexDb& db = engine->db();
  std::printf("vislang %s: serving %lld images (model %s) at %s\n", command.c_str(), (long long)db.size(),
              db.model().name.c_str(), server.url().c_str());
  std::printf("Open %s in a browser; Ctrl-C stops.\n", server.url().c_str());
  std::fflush(stdout);
  server.run();
  done = true;
  watcher.join();
  std::printf("vislang %s: stopped\n", command.c_str());
  return 0;
}

}  // namespace vislang::cli

namespace {

ArgParser serve_parser() {
  ArgParser p("serve", "--db PATH [--host 127.0.0.1] [--port 8080] [--max-upload-mb 20] [--http-threads 8] [--max-rerank 50]\n"
              "                    [--log]",
              "Serves the search page (text search, query by uploaded image, zero-shot labels, \"more like\n"
              "this\") and its JSON API (docs/server.md) for the index DB at PATH. Binds to 127.0.0.1 unless\n"
              "--host says otherwise; serves only the image files that are in the DB.");
  add_search_model_options(p);
  p.value("--db", "PATH", "the index DB folder", "inputs");
  p.value("--host", "H", "address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)", "server");
  p.value("--port", "P", "port (default 8080; 0: any free port, printed)", "server");
  p.value("--max-upload-mb", "MB", "largest request body accepted; larger ones get 413 (default 20)", "server");
  p.value("--http-threads", "N", "request worker threads (default 8)", "server");
  p.value("--max-rerank", "N", "BLIP-2: most images the ITM head re-scores per text query (rerank=N, or k with\n"
          "score=itm); larger requests get 400 (default 50)", "server");
  p.flag("--log", "print one line per request on stderr", "server");
  return p;
}

int serve_main(const Parsed& a) {
  search::ServerOptions opt;
  opt.host = a.get("--host", "127.0.0.1");
  opt.port = int(a.get_int("--port", 8080, 0, 65535));
  opt.max_upload_bytes = size_t(a.get_int("--max-upload-mb", 20, 1, 4096)) << 20;
  opt.threads = int(a.get_int("--http-threads", 8, 1, 256));
  opt.max_rerank = int(a.get_int("--max-rerank", opt.max_rerank, 1, 10000));
  if (a.has("--log")) opt.access_log = &std::cerr;
  auto engine = open_engine(a, Tokenizer::OPTIONAL, "serve");
  return serve_until_signal(engine, opt, "serve");
}

}  // namespace

int run_serve(int argc, char** argv) {
  ArgParser p = serve_parser();
  return run_command(p, argc, argv, serve_main);
}
