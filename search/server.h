// search/server.h — the search engine over HTTP: one embedded web page (web/index.html, app.js,
// style.css; search/web_assets.h) and the JSON API it calls. docs/server.md documents every endpoint.
//
// Where it sits: browser / curl → **SearchServer** (cpp-httplib, a thread pool) → SearchEngine
// (search/engine.h) → IndexDb + Embedder.
//
//   GET  /                      the page            GET /image/ID   the indexed file (only files in the DB)
//   GET  /api/health            status, counts      GET /thumb/ID   a JPEG thumbnail (longest side 256)
//   GET|POST /api/search        text query          POST /api/search_image   upload, or {"id": N} = more like this
//                               (BLIP-2: score=itm, rerank=N re-rank by the ITM head, SearchEngine::search_by_text_itm)
//   POST /api/zero_shot         upload + labels     GET|POST /api/recommend  liked / disliked / text
//
// Security, by construction:
//   * binds to 127.0.0.1 unless told otherwise;
//   * files are addressed only by DB id — there is no path parameter to traverse with — and a file is
//     served only when its real path (every symlink resolved) is still inside the folder it was indexed
//     from, and it is opened with O_NOFOLLOW;
//   * request bodies above ServerOptions::max_upload_bytes (default 20 MB) get 413 before any work;
//   * every malformed request gets a 4xx JSON {"error": "..."}; handler exceptions become JSON 400/404/500
//     responses, never a crash; k is capped (max_k), and so is the number of ITM re-scores (max_rerank).
// Concurrency: requests run on httplib's thread pool; the engine is thread-safe (see its header).
#pragma once
#include <cstddef>
#include <memory>
#include <ostream>
#include <string>

#include "search/engine.h"

namespace vislang::search {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                           // 0: any free port (see SearchServer::bind)
  size_t max_upload_bytes = 20u << 20;       // 20 MiB
  int threads = 8;                           // worker threads
  int max_k = 200;                           // larger k is clamped
  int max_rerank = 50;                       // most images ITM re-scores per request (rerank=N, or k with score=itm)
  std::ostream* access_log = nullptr;        // one line per request when set
};

class SearchServer {
 public:
  SearchServer(std::shared_ptr<SearchEngine> engine, ServerOptions opt = {});
  ~SearchServer();
  SearchServer(const SearchServer&) = delete;
  SearchServer& operator=(const SearchServer&) = delete;

  // Binds the listening socket and returns the port (the one chosen when ServerOptions::port is 0).
  // Throws vislang::Error naming host and port when it cannot.
  int bind();
  // Serves until stop() (from another thread or a signal handler's thread). bind() first.
  void run();
  // bind() + run() on a background thread; returns the port once listening.
  int start();
  void stop();
  int port() const;
  std::string url() const;  // "http://127.0.0.1:8080/"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vislang::search
