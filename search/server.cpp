// search/server.cpp — SearchServer: routes, parameter parsing, safe file serving, thumbnails. See
// search/server.h for the security rules and docs/server.md for the API.
#include "search/server.h"

#include <sys/socket.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "image/resize.h"
#include "search/file_util.h"
#include "search/web_assets.h"

// JPEG thumbnails: stb_image_write compiled privately into this file (static functions), so it cannot
// clash with another translation unit that includes it.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image_write.h>
// Header-only size check of uploads (stbi_info_from_memory) before decoding them; private copy too.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <stb_image.h>
#pragma GCC diagnostic pop

using nlohmann::json;

namespace vislang::search {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kThumbSide = 256;
constexpr size_t kThumbCacheEntries = 4096;
constexpr int64_t kMaxUploadPixels = 40'000'000;  // larger uploads are refused before decoding

// A request error: status + message, turned into {"error": message}.
struct HttpError {
  int status;
  std::string message;
};

void send_json(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& msg) { send_json(res, {{"error", msg}}, status); }

// "a, b,,c\nd" → {"a", "b", "c", "d"}: items separated by commas or newlines, trimmed, empty ones dropped.
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t e = s.find_first_of(",\n", start);
    if (e == std::string::npos) e = s.size();
    std::string item = s.substr(start, e - start);
    item.erase(0, item.find_first_not_of(" \t\r"));
    item.erase(item.find_last_not_of(" \t\r") + 1);
    if (!item.empty()) out.push_back(std::move(item));
    start = e + 1;
  }
  return out;
}

// Request parameters from the query string, a JSON body or multipart form fields (in that order of
// precedence: JSON body, form field, query string).
class Params {
 public:
  explicit Params(const httplib::Request& req) : req_(req) {
    const std::string ct = req.get_header_value("Content-Type");
    if (!req.body.empty() && ct.rfind("application/json", 0) == 0) {
      try {
        body_ = json::parse(req.body);
      } catch (const std::exception& e) {
        throw HttpError{400, std::string("malformed JSON body: ") + e.what()};
      }
      if (!body_.is_object()) throw HttpError{400, "the JSON body must be an object"};
      has_json_ = true;
    }
  }
  std::optional<std::string> get(const std::string& k) const {
    if (has_json_ && body_.contains(k) && !body_[k].is_null()) {
      const json& v = body_[k];
      if (v.is_string()) return v.get<std::string>();
      if (v.is_array()) {
        std::string s;
        for (const json& e : v) s += (s.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
        return s;
      }
      return v.dump();
    }
    if (req_.is_multipart_form_data() && req_.has_file(k)) {
      const httplib::MultipartFormData f = req_.get_file_value(k);
      if (f.filename.empty()) return f.content;
    }
    if (req_.has_param(k.c_str())) return req_.get_param_value(k.c_str());
    return std::nullopt;
  }
  std::string str(const std::string& k, const std::string& def = "") const { return get(k).value_or(def); }
  int64_t integer(const std::string& k, int64_t def, int64_t lo, int64_t hi) const {
    auto v = get(k);
    if (!v || v->empty()) return def;
    return parse_int(*v, k, lo, hi);
  }
  double number(const std::string& k, double def) const {
    auto v = get(k);
    if (!v || v->empty()) return def;
    try {
      size_t pos = 0;
      double d = std::stod(*v, &pos);
      if (pos == v->size() && std::isfinite(d)) return d;
    } catch (const std::exception&) {
    }
    throw HttpError{400, vislang::str("parameter '", k, "' must be a number, got '", *v, "'")};
  }
  std::vector<int64_t> ids(const std::string& k) const {
    std::vector<int64_t> out;
    auto v = get(k);
    if (!v) return out;
    for (const std::string& item : split_list(*v)) out.push_back(parse_int(item, k, 1, INT64_MAX));
    if (out.size() > 1000) throw HttpError{400, vislang::str("parameter '", k, "': at most 1000 ids")};
    return out;
  }
  static int64_t parse_int(const std::string& s, const std::string& k, int64_t lo, int64_t hi) {
    try {
      size_t pos = 0;
      long long x = std::stoll(s, &pos);
      if (pos == s.size() && x >= lo && x <= hi) return x;
    } catch (const std::exception&) {
    }
    throw HttpError{400, vislang::str("parameter '", k, "' must be an integer in [", lo, ", ", hi, "], got '", s, "'")};
  }

 private:
  const httplib::Request& req_;
  json body_;
  bool has_json_ = false;
};

const char* mime_of(const std::string& format) {
  if (format == "JPEG") return "image/jpeg";
  if (format == "PNG") return "image/png";
  if (format == "BMP") return "image/bmp";
  if (format == "GIF") return "image/gif";
  if (format == "WebP") return "image/webp";
  return "application/octet-stream";
}

// The bytes of an indexed file, if it may be served: its real path must be inside its root, and the
// last component must not be a symlink (O_NOFOLLOW).
bool read_served_file(const ImageRow& r, std::string& out, std::string& why) {
  if (!inside_root(r.path, r.root)) {
    why = "the file is gone or no longer inside the indexed folder";
    return false;
  }
  return read_file_bytes(r.path, out, why, /*no_follow=*/true);
}

void append_bytes(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size_t(size));
}

}  // namespace

struct SearchServer::Impl {
  std::shared_ptr<SearchEngine> engine;
  ServerOptions opt;
  httplib::Server svr;
  int port = -1;
  std::atomic<int> listen_fd{-1};  // the listening socket, seen by the socket-options hook
  std::thread thread;
  std::mutex thumb_mu;
  std::unordered_map<int64_t, std::string> thumbs;
  std::deque<int64_t> thumb_order;

  // `with_itm`: a BLIP-2 ITM re-ranking; "score" is then P(match) where it was computed (as in
  // `vislang search --rerank`), "itc" the cosine and "itm" P(match) or null.
  json result_json(const SearchResult& r, bool with_itm) const {
    json j = {{"id", r.id},
              {"path", r.row.path},
              {"label", r.row.label},
              {"caption", r.row.caption},
              {"width", r.row.width},
              {"height", r.row.height},
              {"image", vislang::str("/image/", r.id)},
              {"thumb", vislang::str("/thumb/", r.id)}};
    put_scores(j, r, with_itm);
    return j;
  }
  json results_json(const std::vector<SearchResult>& rs, Clock::time_point t0, bool with_itm = false) const {
    json arr = json::array();
    for (const SearchResult& r : rs) arr.push_back(result_json(r, with_itm));
    return {{"results", arr}, {"took_ms", std::chrono::duration<double, std::milli>(Clock::now() - t0).count()}};
  }
  int k_of(const Params& p) const { return int(p.integer("k", 10, 1, opt.max_k)); }

  // "itc", "itm", or "" when not given; 400 for anything else.
  static std::string score_of(const Params& p) {
    const std::string score = p.str("score");
    if (!score.empty() && score != "itc" && score != "itm")
      throw HttpError{400, vislang::str("parameter 'score' must be itc or itm, got '", score, "'")};
    return score;
  }
  // score=itc|itm and rerank=N, with `vislang search`'s meaning: how many of the ITC top results ITM
  // re-scores (rerank=N: N; score=itm alone: the k shown), 0 for ITC only. 400 naming the field for a
  // bad value, for rerank with score=itc, and for ITM on a CLIP model.
  int itm_candidates(const Params& p, int k) const {
    const std::string score = score_of(p), rerank = p.str("rerank");
    if (score != "itm" && rerank.empty()) return 0;
    int n = k;
    if (!rerank.empty()) {
      try {
        n = int(Params::parse_int(rerank, "rerank", 1, opt.max_rerank));
      } catch (const HttpError&) {
        throw HttpError{400, vislang::str("parameter 'rerank' must be a whole number from 1 to ", opt.max_rerank,
                                          " (how many of the ITC top results ITM re-scores; this server's cap), got '",
                                          rerank, "'")};
      }
      if (score == "itc")
        throw HttpError{400, "parameter 'rerank' re-scores the ITC top N with ITM; it cannot go with score=itc"};
    } else if (k > opt.max_rerank) {
      throw HttpError{400, vislang::str("score=itm re-scores the k results with ITM, so parameter 'k' must be at most ",
                                        opt.max_rerank, " (this server's cap), got ", k, "; or give rerank=N")};
    }
    if (!engine->embedder().is_blip2())
      throw HttpError{400, vislang::str(rerank.empty() ? "score=itm" : "parameter 'rerank'",
                                        " needs a BLIP-2 model with an itm_head; this server's model '",
                                        engine->db().model().name, "' is a CLIP model, which ranks by cosine only")};
    return n;
  }
  // Image, "more like this" and recommendation queries: ITM scores an image against a text, so they
  // take no score=itm or rerank (score=itc is accepted: it is what they do).
  static void refuse_itm(const Params& p, const char* what) {
    const char* field = score_of(p) == "itm" ? "score" : !p.str("rerank").empty() ? "rerank" : nullptr;
    if (field)
      throw HttpError{400, vislang::str("parameter '", field, "': ", what,
                                        " are ranked by ITC only (score=itm and rerank re-rank text queries: ITM "
                                        "scores an image against a text)")};
  }

  // The uploaded image: multipart field "image" (or "file"), or a raw image body.
  Image uploaded_image(const httplib::Request& req) const {
    std::string bytes, name = "upload";
    if (req.is_multipart_form_data()) {
      for (const char* field : {"image", "file"})
        if (req.has_file(field)) {
          httplib::MultipartFormData f = req.get_file_value(field);
          bytes = std::move(f.content);
          if (!f.filename.empty()) name = f.filename;
          break;
        }
      if (bytes.empty()) throw HttpError{400, "no image: send a multipart field 'image' with the file"};
    } else {
      bytes = req.body;
      if (bytes.empty()) throw HttpError{400, "no image: send the file as the body or as multipart field 'image'"};
    }
    int w = 0, h = 0, c = 0;
    if (stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), int(bytes.size()), &w, &h, &c) &&
        int64_t(w) * h > kMaxUploadPixels)
      throw HttpError{413, vislang::str("the image is ", w, "x", h, " pixels; at most ", kMaxUploadPixels, " are accepted")};
    try {
      return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
    } catch (const Error& e) {
      throw HttpError{400, vislang::str("cannot decode the uploaded image: ", e.what())};
    }
  }

  ImageRow row_or_404(int64_t id) const {
    std::optional<ImageRow> r = engine->db().row(id);
    if (!r) throw HttpError{404, vislang::str("no image with id ", id)};
    return *r;
  }

  std::string thumbnail(const ImageRow& r) {
    {
      std::lock_guard<std::mutex> g(thumb_mu);
      auto it = thumbs.find(r.id);
      if (it != thumbs.end()) return it->second;
    }
    std::string bytes, why;
    if (!read_served_file(r, bytes, why)) throw HttpError{404, why};
    Image img;
    try {
      img = decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), r.path);
    } catch (const Error& e) {
      throw HttpError{404, vislang::str("the file can no longer be decoded: ", e.what())};
    }
    const int side = std::max(img.width, img.height);
    if (side > kThumbSide) {
      const int w = std::max(1, int(int64_t(img.width) * kThumbSide / side));
      const int h = std::max(1, int(int64_t(img.height) * kThumbSide / side));
      img = resize_bicubic(img, w, h);
    }
    std::string jpg;
    if (!stbi_write_jpg_to_func(append_bytes, &jpg, img.width, img.height, 3, img.rgb.data(), 85))
      throw HttpError{500, "thumbnail encoding failed"};
    std::lock_guard<std::mutex> g(thumb_mu);
    if (!thumbs.count(r.id)) {
      thumbs[r.id] = jpg;
      thumb_order.push_back(r.id);
      while (thumb_order.size() > kThumbCacheEntries) {
        thumbs.erase(thumb_order.front());
        thumb_order.pop_front();
      }
    }
    return jpg;
  }

  // Wraps a handler: HttpError → its status; vislang::Error → 400 (bad input reached the engine);
  // anything else → 500. Always a JSON body.
  template <typename F>
  httplib::Server::Handler wrap(F f) {
    return [f](const httplib::Request& req, httplib::Response& res) {
      try {
        f(req, res);
      } catch (const HttpError& e) {
        send_error(res, e.status, e.message);
      } catch (const Error& e) {
        send_error(res, 400, e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, std::string("internal error: ") + e.what());
      }
    };
  }

  void routes() {
    svr.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                             {"Content-Security-Policy",
                              "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'"},
                             {"Referrer-Policy", "no-referrer"}});
    for (const std::string& name : web_asset_names()) {
      const WebAsset* a = web_asset(name);
      auto serve = [a](const httplib::Request&, httplib::Response& res) {
        res.set_content(reinterpret_cast<const char*>(a->data), a->size, a->mime);
        res.set_header("Cache-Control", "no-cache");
      };
      svr.Get("/" + name, serve);
      if (name == "index.html") svr.Get("/", serve);
    }

    svr.Get("/api/health", wrap([this](const httplib::Request&, httplib::Response& res) {
      const IndexDb& db = engine->db();
      send_json(res, {{"status", "ok"},
                      {"images", db.size()},
                      {"model", db.model().name},
                      {"model_path", db.model().path},
                      {"dim", db.model().dim},
                      {"index", index_kind_name(db.kind())},
                      {"generation", db.generation()},
                      {"text_queries", engine->embedder().has_tokenizer()},
                      {"family", db.model().family},  // "clip" or "blip2"
                      {"itm", engine->embedder().is_blip2() && engine->embedder().has_tokenizer()},
                      {"max_rerank", opt.max_rerank},
                      {"max_upload_bytes", opt.max_upload_bytes}});
    }));

    auto search = wrap([this](const httplib::Request& req, httplib::Response& res) {
      const auto t0 = Clock::now();
      Params p(req);
      const std::string q = p.str("q", p.str("text"));
      if (q.empty()) throw HttpError{400, "missing query: give q=TEXT"};
      if (q.size() > 2000) throw HttpError{400, "the query is longer than 2000 bytes"};
      if (!engine->embedder().has_tokenizer()) throw HttpError{400, "text queries need a tokenizer, and the server has none"};
      const int k = k_of(p);
      const float min_score = float(p.number("min_score", -2.0));
      const int n = itm_candidates(p, k);
      json j;
      if (n > 0) {
        ItmOptions io;
        io.confined = true;  // only files still inside their indexed folder, as for /image and /thumb
        ItmSearch r = engine->search_by_text_itm(q, n, k, min_score, io);
        j = results_json(r.results, t0, /*with_itm=*/true);
        j["score"] = "itm";
        j["rerank"] = n;
        j["unreadable"] = json::array();  // candidates ITM could not re-score: after the re-scored ones
        for (const ItmSkip& u : r.unreadable) j["unreadable"].push_back({{"id", u.id}, {"path", u.path}, {"reason", u.reason}});
      } else {
        j = results_json(engine->search_by_text(q, k, min_score), t0);
        j["score"] = "itc";
      }
      j["query"] = q;
      send_json(res, j);
    });
    svr.Get("/api/search", search);
    svr.Post("/api/search", search);

    auto search_image = wrap([this](const httplib::Request& req, httplib::Response& res) {
      const auto t0 = Clock::now();
      Params p(req);
      refuse_itm(p, "image queries");
      const int k = k_of(p);
      const float min_score = float(p.number("min_score", -2.0));
      if (p.get("id")) {  // more like this
        const int64_t id = p.integer("id", 0, 1, INT64_MAX);
        row_or_404(id);
        json j = results_json(engine->search_by_id(id, k, min_score), t0);
        j["query_id"] = id;
        send_json(res, j);
        return;
      }
      Image img = uploaded_image(req);
      json j = results_json(engine->search_by_image(img, k, min_score), t0);
      j["query_size"] = {img.width, img.height};
      send_json(res, j);
    });
    svr.Get("/api/search_image", search_image);
    svr.Post("/api/search_image", search_image);

    auto zero_shot = wrap([this](const httplib::Request& req, httplib::Response& res) {
      const auto t0 = Clock::now();
      Params p(req);
      if (!engine->embedder().has_tokenizer()) throw HttpError{400, "zero-shot needs a tokenizer, and the server has none"};
      const std::vector<std::string> labels = split_list(p.str("labels"));
      if (labels.empty()) throw HttpError{400, "missing labels: give labels=a,b,c"};
      if (labels.size() > 1000) throw HttpError{400, "at most 1000 labels"};
      const std::string templ = p.str("template", "a photo of a {}.");
      if (templ.find("{}") == std::string::npos) throw HttpError{400, "the template must contain {}"};
      Image img;
      if (p.get("id")) {
        ImageRow r = row_or_404(p.integer("id", 0, 1, INT64_MAX));
        std::string bytes, why;
        if (!read_served_file(r, bytes, why)) throw HttpError{404, why};
        img = decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), r.path);
      } else {
        img = uploaded_image(req);
      }
      json arr = json::array();
      for (const LabelScore& l : engine->zero_shot(img, labels, templ))
        arr.push_back({{"label", l.label}, {"prob", l.prob}, {"score", l.score}});
      send_json(res, {{"labels", arr},
                      {"template", templ},
                      {"took_ms", std::chrono::duration<double, std::milli>(Clock::now() - t0).count()}});
    });
    svr.Post("/api/zero_shot", zero_shot);
    svr.Get("/api/zero_shot", zero_shot);

    auto recommend = wrap([this](const httplib::Request& req, httplib::Response& res) {
      const auto t0 = Clock::now();
      Params p(req);
      refuse_itm(p, "recommendations");
      RecommendRequest r;
      r.liked = p.ids("liked");
      r.disliked = p.ids("disliked");
      r.text = p.str("text");
      r.k = k_of(p);
      r.min_score = float(p.number("min_score", -2.0));
      r.liked_weight = p.number("liked_weight", r.liked_weight);
      r.disliked_weight = p.number("disliked_weight", r.disliked_weight);
      r.text_weight = p.number("text_weight", r.text_weight);
      r.caption_weight = p.number("caption_weight", r.caption_weight);
      if (r.liked.empty() && r.disliked.empty() && r.text.empty())
        throw HttpError{400, "give liked=ID,..., disliked=ID,... and/or text=..."};
      for (int64_t id : r.liked) row_or_404(id);
      for (int64_t id : r.disliked) row_or_404(id);
      if (!r.text.empty() && !engine->embedder().has_tokenizer())
        throw HttpError{400, "a text intent needs a tokenizer, and the server has none"};
      send_json(res, results_json(engine->recommend(r), t0));
    });
    svr.Get("/api/recommend", recommend);
    svr.Post("/api/recommend", recommend);

    svr.Get(R"(/image/(\d{1,18}))", wrap([this](const httplib::Request& req, httplib::Response& res) {
      ImageRow r = row_or_404(Params::parse_int(req.matches[1], "id", 1, INT64_MAX));
      std::string bytes, why;
      if (!read_served_file(r, bytes, why)) throw HttpError{404, why};
      const std::string fmt =
          sniff_image_format(reinterpret_cast<const uint8_t*>(bytes.data()), std::min<size_t>(bytes.size(), 64));
      res.set_header("Cache-Control", "private, max-age=60");
      res.set_content(bytes, mime_of(fmt));
    }));
    svr.Get(R"(/thumb/(\d{1,18}))", wrap([this](const httplib::Request& req, httplib::Response& res) {
      ImageRow r = row_or_404(Params::parse_int(req.matches[1], "id", 1, INT64_MAX));
      res.set_header("Cache-Control", "private, max-age=60");
      res.set_content(thumbnail(r), "image/jpeg");
    }));

    // Anything else that ends in an error status without a body (no route, 413 from the payload limit,
    // a request httplib could not parse) gets a JSON body too.
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string msg = res.status == 404   ? "not found: " + req.path
                        : res.status == 413 ? "request body too large"
                        : res.status == 405 ? "method not allowed"
                                            : vislang::str("bad request (HTTP ", res.status, ")");
      send_error(res, res.status, msg);
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string msg = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        msg += std::string(": ") + e.what();
      } catch (...) {
      }
      send_error(res, 500, msg);
    });
    if (opt.access_log) {
      std::ostream* log = opt.access_log;
      auto mu = std::make_shared<std::mutex>();
      svr.set_logger([log, mu](const httplib::Request& req, const httplib::Response& res) {
        std::lock_guard<std::mutex> g(*mu);
        *log << req.method << " " << req.path << " " << res.status << " " << res.body.size() << "\n" << std::flush;
      });
    }
  }
};

SearchServer::SearchServer(std::shared_ptr<SearchEngine> engine, ServerOptions opt) : impl_(std::make_unique<Impl>()) {
  VL_CHECK(engine, "SearchServer: no engine");
  impl_->engine = std::move(engine);
  impl_->opt = opt;
  const int threads = std::max(1, opt.threads);
  impl_->svr.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  impl_->svr.set_payload_max_length(opt.max_upload_bytes);
  // Headers and body go out as separate writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms.
  impl_->svr.set_tcp_nodelay(true);
  // Keep connections open for many requests (httplib closes them after 5 by default), and remember the
  // listening socket so bind() can raise its backlog above the 5 compiled into Debian's libcpp-httplib:
  // with more clients connecting at once the kernel drops SYNs and a client waits 1 s to retry.
  impl_->svr.set_keep_alive_max_count(100000);
  Impl* impl = impl_.get();
  impl_->svr.set_socket_options([impl](socket_t sock) {
    httplib::default_socket_options(sock);
    impl->listen_fd = int(sock);
  });
  impl_->svr.set_read_timeout(30, 0);
  impl_->svr.set_write_timeout(30, 0);
  impl_->routes();
}

SearchServer::~SearchServer() {
  stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int SearchServer::bind() {
  const ServerOptions& o = impl_->opt;
  if (o.port == 0) {
    impl_->port = impl_->svr.bind_to_any_port(o.host);
    VL_CHECK(impl_->port > 0, "cannot listen on ", o.host, " (any port)");
  } else {
    VL_CHECK(o.port > 0 && o.port < 65536, "port must be in 1..65535, got ", o.port);
    VL_CHECK(impl_->svr.bind_to_port(o.host, o.port), "cannot listen on ", o.host, ":", o.port,
             " (in use, or the address is not local? try --port 0 for any free port)");
    impl_->port = o.port;
  }
  if (impl_->listen_fd >= 0) ::listen(impl_->listen_fd, 512);  // Linux: a second listen() resizes the backlog
  return impl_->port;
}

void SearchServer::run() {
  VL_CHECK(impl_->port > 0, "SearchServer::run: bind() first");
  impl_->svr.listen_after_bind();
}

int SearchServer::start() {
  const int p = bind();
  impl_->thread = std::thread([this] { impl_->svr.listen_after_bind(); });
  for (int i = 0; i < 2000 && !impl_->svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return p;
}

void SearchServer::stop() {
  if (impl_) impl_->svr.stop();
}

int SearchServer::port() const { return impl_->port; }

std::string SearchServer::url() const {
  std::string host = impl_->opt.host;
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return vislang::str("http://", host, ":", impl_->port, "/");
}

}  // namespace vislang::search
