// cli/bench_search.cpp — `vislang bench search`: the search engine's two speed figures.
//
//   1. Index build throughput: a generated folder of --images PNGs (datasets/toy_world.h, --image-size
//      pixels square; --image-format jpg: the same scenes as JPEGs; generating them is not timed) indexed as `vislang index build` does: read + hash +
//      decode + preprocess (OpenMP over each batch), embed, commit. Reported: images/s, and how far the
//      build is from being bounded by the model (the target: decode + preprocess ≤ 20% of the time):
//        - the wall time embedding waited for decoding (all of the decoding, unless --overlap);
//        - the CPU time of read+hash+decode+preprocess (each image's thread CPU time, summed) as a share
//          of the process's CPU time during the build — with --overlap the wait alone says little, as
//          decoding then slows embedding down on the same cores instead;
//        - the model alone: the same number of batches of ready (random) pixels through the same
//          embedder, timed right after; the build's wall time over that is what everything else costs.
//   2. Text-query latency on a --vectors index (default 100,000 random unit vectors with synthetic rows,
//      flat Faiss index): --clients threads (default 8) each send text queries back to back — every text
//      distinct and the text cache off, so each query runs the text tower — through the engine in-process
//      and through the HTTP API (GET /api/search on 127.0.0.1). Reported: p50/p99/mean latency and
//      queries/s; plus, from one client, the two parts (text encode, vector search + rows) alone.
//
// --model: a model path, a preset name (ViT-B/32, ...: random weights, as `vislang bench clip`), or by
// default the default model (cli/search_common.h), or a tiny random CLIP while that does not exist.
#include <omp.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/clip_common.h"
#include "cli/commands.h"
#include "cli/search_common.h"
#include "core/cpu_features.h"
#include "search/indexer.h"
#include "datasets/toy_world.h"
#include "image/png_write.h"

using namespace vislang;
using namespace vislang::cli;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct Latency {
  double p50 = 0, p99 = 0, mean = 0, max = 0, qps = 0;
  int64_t n = 0;
};

Latency summarize(std::vector<double> ms, double wall_s) {
  Latency l;
  if (ms.empty()) return l;
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, size_t(std::ceil(p * double(ms.size())) - 1))]; };
  l.n = int64_t(ms.size());
  l.p50 = pct(0.50);
  l.p99 = pct(0.99);
  double s = 0;
  for (double v : ms) s += v;
  l.mean = s / double(ms.size());
  l.max = ms.back();
  l.qps = wall_s > 0 ? double(ms.size()) / wall_s : 0;
  return l;
}

// `clients` threads each run `per_client` calls of fn(client, i); returns per-call latencies (ms).
Latency run_clients(int clients, int per_client, const std::function<void(int, int)>& fn) {
  std::vector<std::vector<double>> ms(static_cast<size_t>(clients));
  std::vector<std::thread> th;
  std::atomic<int> ready{0};
  const auto t0 = Clock::now();
  for (int c = 0; c < clients; ++c)
    th.emplace_back([&, c] {
      ready++;
      while (ready.load() < clients) std::this_thread::yield();
      for (int i = 0; i < per_client; ++i) {
        const auto q0 = Clock::now();
        fn(c, i);
        ms[size_t(c)].push_back(std::chrono::duration<double, std::milli>(Clock::now() - q0).count());
      }
    });
  for (auto& t : th) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> all;
  for (auto& v : ms) all.insert(all.end(), v.begin(), v.end());
  return summarize(all, wall);
}

std::string query_text(int client, int i) {
  const int n = client * 100003 + i;
  return str("a photo of a ", toy::label_name(n % toy::kNumLabels), " number ", n);
}

ArgParser bench_parser() {
  ArgParser p("bench search",
              "[--model M] [--images 2000] [--image-size 224] [--vectors 100000] [--clients 8] [--queries 50]",
              "Index build throughput (images/s, with the share of read+decode+preprocess vs embedding) on a\n"
              "generated image folder, and text-query latency p50/p99 on a large flat index under concurrent\n"
              "clients, in-process and over HTTP.");
  add_search_model_options(p);
  p.value("--seed", "S", "seed of random weights (presets) and vectors (default 0)", "model");
  p.value("--images", "N", "images in the generated folder (default 2000)", "build");
  p.value("--image-size", "PX", "side of the generated images (default 224)", "build");
  p.value("--image-format", "F", "png (default) or jpg (quality 90, 4:2:0) for the generated images", "build");
  p.value("--batch", "N", "images per forward pass (default 32)", "build");
  p.flag("--overlap", "decode the next batch on a helper thread while this one is embedded (default: in turn)",
         "build");
  p.value("--decode-threads", "N", "threads that read and decode a batch (default: OpenMP's default)", "build");
  p.value("--vectors", "N", "vectors in the query index (default 100000)", "query");
  p.value("--clients", "C", "concurrent clients (default 8)", "query");
  p.value("--queries", "Q", "text queries per client (default 50)", "query");
  p.value("--k", "K", "results per query (default 10)", "query");
  p.flag("--no-http", "skip the HTTP measurement", "query");
  p.flag("--no-build", "skip the index build measurement", "run");
  p.value("--format", "F", "table (default) or json", "output");
  return p;
}

int bench_main(const Parsed& a) {
  const int64_t n_images = a.get_int("--images", 2000, 1, 10000000);
  const int image_size = int(a.get_int("--image-size", 224, 16, 4096));
  const int batch = int(a.get_int("--batch", 32, 1, 4096));
  const int64_t n_vectors = a.get_int("--vectors", 100000, 1, 100000000);
  const int clients = int(a.get_int("--clients", 8, 1, 1024));
  const int per_client = int(a.get_int("--queries", 50, 1, 1000000));
  const int k = int(a.get_int("--k", 10, 1, 10000));
  const uint64_t seed = uint64_t(a.get_int("--seed", 0, 0, 1LL << 62));
  const std::string format = a.get("--format", "table");
  const std::string image_format = a.get("--image-format", "png");
  if (image_format != "png" && image_format != "jpg") throw UsageError("--image-format must be png or jpg");
  if (format != "table" && format != "json") throw UsageError("--format must be table or json");

  const fs::path tmp = fs::temp_directory_path() / str("vislang_bench_search_", ::getpid());
  fs::create_directories(tmp);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{tmp};

  // The model: a path, a preset (random weights), the default model, or the tiny random stand-in.
  std::string model = a.get("--model"), model_note;
  if (model.empty()) model = find_default_model();
  if (model.empty() || !fs::exists(model)) {
    clip::ClipConfig cfg = tiny_clip_config();
    if (!model.empty()) {
      try {
        cfg = clip::ClipConfig::preset(model);
      } catch (const Error& e) {
        VL_FAIL("model '", model, "' is neither an existing path nor a preset (", e.what(), ")");
      }
    }
    model_note = str(model.empty() ? std::string("tiny") : model, " (random weights)");
    model = (tmp / "random_clip.safetensors").string();
    write_random_clip(cfg, model, seed);
  }
  auto emb = load_embedder(a, model, Tokenizer::REQUIRED, "bench search");
  if (model_note.empty()) model_note = emb->info().name;
  const int64_t D = emb->dim();
  const int threads = omp_get_max_threads();

  // ---- 1. index build -------------------------------------------------------------------------------
  search::IndexStats bs;
  double gen_s = 0, build_cpu_s = 0, model_s = 0;
  if (!a.has("--no-build")) {
    const std::string images = (tmp / "images").string();
    auto t0 = Clock::now();
    toy::ToyWorldConfig tc;
    tc.image_size = image_size;
    tc.seed = seed;
    const toy::ToyWorld world(tc);
    if (image_format == "png") {
      world.write_folder(images, n_images, toy::Split::TEST);
    } else {  // the same scenes as JPEG files (photos usually are)
      fs::create_directories(images);
      std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 8)
      for (int64_t i = 0; i < n_images; ++i) {
        try {
          const std::vector<uint8_t> jpg = encode_jpeg(world.sample(uint64_t(i), toy::Split::TEST).image(), 90);
          write_file_atomic(str(images, "/test_", i, ".jpg"), jpg.data(), jpg.size());
        } catch (...) {
#pragma omp critical(vislang_bench_jpeg)
          if (!error) error = std::current_exception();
        }
      }
      if (error) std::rethrow_exception(error);
    }
    gen_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const std::string db_path = (tmp / "build.db").string();
    search::IndexDb::create(db_path, emb->info(), search::IndexKind::FLAT);
    auto db = search::IndexDb::open(db_path, search::IndexDb::Mode::READ_WRITE);
    search::IndexOptions opt;
    opt.batch = batch;
    opt.overlap = a.has("--overlap");
    opt.threads = int(a.get_int("--decode-threads", 0, 0, 4096));
    const double cpu0 = process_cpu_seconds();
    bs = search::index_folder(*db, *emb, images, opt);
    build_cpu_s = process_cpu_seconds() - cpu0;
    VL_CHECK(bs.added == n_images, "bench search: indexed ", bs.added, " of ", n_images, " generated images");
    // The model alone: the same batches as ready pixels (the cost does not depend on their values).
    const int64_t S = emb->preprocess_config().size;
    Generator gen(seed + 2);
    const Tensor px = Tensor::randn({batch, 3, S, S}, gen);  // (B, 3, S, S)
    t0 = Clock::now();
    for (int64_t b0 = 0; b0 < n_images; b0 += batch)
      (void)emb->embed_pixels(px.narrow(0, 0, std::min<int64_t>(batch, n_images - b0)).contiguous());
    model_s = std::chrono::duration<double>(Clock::now() - t0).count();
  }

  // ---- 2. query latency on a large index -------------------------------------------------------------
  const std::string qdb_path = (tmp / "query.db").string();
  search::IndexDb::create(qdb_path, emb->info(), search::IndexKind::FLAT);
  double fill_s = 0;
  {
    auto db = search::IndexDb::open(qdb_path, search::IndexDb::Mode::READ_WRITE);
    std::mt19937_64 rng(seed + 1);
    std::normal_distribution<float> nd;
    auto t0 = Clock::now();
    for (int64_t b0 = 0; b0 < n_vectors; b0 += 20000) {
      std::vector<search::NewImage> add;
      for (int64_t i = b0; i < std::min(n_vectors, b0 + 20000); ++i) {
        search::NewImage ni;
        ni.row.path = str("/synthetic/", i, ".png");
        ni.row.root = "/synthetic";
        ni.row.hash = "0";
        ni.row.label = toy::label_name(int(i % toy::kNumLabels));
        ni.vec.resize(size_t(D));
        for (float& v : ni.vec) v = nd(rng);
        search::normalize_rows(ni.vec.data(), 1, D);
        add.push_back(std::move(ni));
      }
      db->commit(add, {});
    }
    db->save_index();
    fill_s = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  auto qdb = std::shared_ptr<search::IndexDb>(search::IndexDb::open(qdb_path, search::IndexDb::Mode::READ_ONLY));
  auto engine = std::make_shared<search::SearchEngine>(qdb, emb);
  emb->set_text_cache_size(0);  // every query runs the text tower
  for (int i = 0; i < 4; ++i) (void)engine->search_by_text(query_text(999, i), k);  // warm-up

  // Parts, one client: text encode alone; vector search + rows alone.
  Latency enc = run_clients(1, 30, [&](int, int i) { (void)emb->embed_text(query_text(998, i)); });
  const std::vector<float> qv = emb->embed_text("a photo of a red circle");
  Latency vs = run_clients(1, 100, [&](int, int) { (void)engine->search_by_vector(qv, k); });
  // End to end, in-process.
  Latency e2e = run_clients(clients, per_client, [&](int c, int i) {
    if (engine->search_by_text(query_text(c, i), k).size() != size_t(std::min<int64_t>(k, n_vectors)))
      throw Error("bench search: short result list");
  });
  // End to end, over HTTP.
  Latency http;
  if (!a.has("--no-http")) {
    search::ServerOptions so;
    so.port = 0;
    so.threads = std::max(8, clients);
    search::SearchServer server(engine, so);
    const int port = server.start();
    std::vector<std::unique_ptr<httplib::Client>> cl;
    for (int c = 0; c < clients; ++c) {
      cl.push_back(std::make_unique<httplib::Client>("127.0.0.1", port));
      cl.back()->set_keep_alive(true);
      cl.back()->set_tcp_nodelay(true);
    }
    std::atomic<int> bad{0};
    http = run_clients(clients, per_client, [&](int c, int i) {
      auto res = cl[size_t(c)]->Get(("/api/search?k=" + std::to_string(k) + "&q=" +
                                     httplib::detail::encode_query_param(query_text(c + 500, i))).c_str());
      if (!res || res->status != 200) bad++;
    });
    server.stop();
    VL_CHECK(bad.load() == 0, "bench search: ", bad.load(), " HTTP queries failed");
  }

  const std::string cpu = cpu_info().brand;
  double load1 = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load1) != 1) load1 = -1;
    std::fclose(f);
  }
  if (format == "json") {
    auto lat = [](const Latency& l) {
      return nlohmann::json{{"p50_ms", l.p50}, {"p99_ms", l.p99}, {"mean_ms", l.mean}, {"max_ms", l.max},
                            {"qps", l.qps}, {"n", l.n}};
    };
    nlohmann::json j = {{"model", model_note}, {"dim", D}, {"threads", threads}, {"cpu", cpu}, {"load1", load1}};
    if (!a.has("--no-build"))
      j["build"] = {{"images", n_images},          {"image_size", image_size}, {"image_format", image_format},     {"seconds", bs.seconds},
                    {"images_per_s", n_images / bs.seconds}, {"read_decode_s", bs.read_decode_s},
                    {"embed_s", bs.embed_s},       {"commit_s", bs.commit_s},      {"generate_s", gen_s},
                    {"decode_wait_s", bs.decode_wait_s}, {"overlap", a.has("--overlap")},
                    {"decode_wait_share", bs.seconds > 0 ? bs.decode_wait_s / bs.seconds : 0},
                    {"read_decode_cpu_s", bs.read_decode_cpu_s}, {"build_cpu_s", build_cpu_s},
                    {"decode_cpu_share", build_cpu_s > 0 ? bs.read_decode_cpu_s / build_cpu_s : 0},
                    {"model_alone_s", model_s}, {"model_alone_images_per_s", n_images / model_s},
                    {"speed_vs_model", model_s / bs.seconds}};
    j["query"] = {{"vectors", n_vectors}, {"clients", clients}, {"k", k}, {"fill_s", fill_s},
                  {"text_encode", lat(enc)}, {"vector_search", lat(vs)}, {"engine", lat(e2e)}};
    if (!a.has("--no-http")) j["query"]["http"] = lat(http);
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("vislang bench search — model %s, %lld-d embeddings, %d threads, %s, load average %.2f\n",
              model_note.c_str(), (long long)D, threads, cpu.c_str(), load1);
  if (!a.has("--no-build")) {
    std::printf("\nindex build: %lld generated %dx%d %s (generated in %.1f s, not timed), batch %d\n",
                (long long)n_images, image_size, image_size, image_format == "png" ? "PNGs" : "JPEGs (quality 90)",
                gen_s, batch);
    std::printf("  %.2f s, %.1f images/s; the model alone on as many batches of ready pixels: %.2f s, %.1f images/s\n"
                "  -> the build runs at %.1f%% of the model's speed\n",
                bs.seconds, n_images / bs.seconds, model_s, n_images / model_s, 100 * model_s / bs.seconds);
    std::printf("  read+hash+decode+preprocess: %.3f ms of CPU per image, %.1f%% of the build's CPU time (%.2f of %.2f s)\n",
                1e3 * bs.read_decode_cpu_s / double(n_images), 100 * bs.read_decode_cpu_s / build_cpu_s,
                bs.read_decode_cpu_s, build_cpu_s);
    std::printf("  of the wall time: embedding waited for decoding %.1f%%, embed %.1f%%, DB %.1f%% (decoding %s)\n",
                100 * bs.decode_wait_s / bs.seconds, 100 * bs.embed_s / bs.seconds, 100 * bs.commit_s / bs.seconds,
                a.has("--overlap") ? "overlapped with embedding (--overlap)" : "not overlapped");
  }
  std::printf("\ntext queries: %lld vectors, flat index (filled in %.1f s), k = %d, every text distinct (no cache)\n",
              (long long)n_vectors, fill_s, k);
  std::printf("  %-34s %9s %9s %9s %9s %10s\n", "", "p50 ms", "p99 ms", "mean ms", "max ms", "queries/s");
  auto row = [](const char* name, const Latency& l) {
    std::printf("  %-34s %9.2f %9.2f %9.2f %9.2f %10.1f\n", name, l.p50, l.p99, l.mean, l.max, l.qps);
  };
  row("text encode alone (1 client)", enc);
  row("vector search + rows (1 client)", vs);
  const std::string e2e_name = str("end to end, ", clients, " clients, in-process");
  row(e2e_name.c_str(), e2e);
  if (!a.has("--no-http")) {
    const std::string http_name = str("end to end, ", clients, " clients, HTTP");
    row(http_name.c_str(), http);
  }
  return 0;
}

}  // namespace

int run_bench_search(int argc, char** argv) {
  ArgParser p = bench_parser();
  return run_command(p, argc, argv, bench_main);
}
