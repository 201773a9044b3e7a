// cli/main.cpp — the `vislang` command: one binary, one subcommand per application.
// Subcommands: version, bench ops|clip|blip2|search, tokenize, embed, zero-shot, similarity, train,
// index, search, recommend, serve, demo.
#include <cstring>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "core/error.h"

static void usage(std::ostream& os) {
  os << "usage: vislang <command> [options]\n\n"
        "commands:\n"
        "  version          version, build type, CUDA on/off, CPU features, OpenMP threads\n"
        "  bench ops        op throughput at ViT-B/32 shapes (GFLOP/s, GB/s, % of fp32 peak)\n"
        "  bench clip       CLIP images/s and texts/s, peak RSS (a model path or a preset: random weights)\n"
        "  bench blip2      BLIP-2 images/s: ViT-g + Q-Former, and the Q-Former alone (random weights by default)\n"
        "  tokenize         CLIP token ids of texts (SOT ... EOT)\n"
        "  embed            image or text embeddings as JSON lines or a .npy matrix\n"
        "  zero-shot        zero-shot classification of images with prompt ensembling\n"
        "  similarity       the image-text logits matrix\n"
        "  index            image search index: build, add, prune, info (Faiss + SQLite)\n"
        "  search           images most similar to a text or an image, from an index\n"
        "  recommend        images ranked by liked/disliked items and a text intent\n"
        "  serve            the search web page and its JSON API\n"
        "  demo             generated images -> index -> web page (or sample queries with --no-serve)\n"
        "  bench search     index build images/s and text-query latency p50/p99\n"
        "  train            train a CLIP on the toy world (--recipe toy) or fine-tune one (--init)\n"
        "  toy-eval         zero-shot and retrieval metrics of a toy-world CLIP (default: the embedded model)\n\n"
        "Run 'vislang <command> --help' for the options of a command.\n";
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  try {
    if (cmd == "version" || cmd == "--version") return run_version(argc - 1, argv + 1);
    if (cmd == "tokenize") return run_tokenize(argc - 1, argv + 1);
    if (cmd == "embed") return run_embed(argc - 1, argv + 1);
    if (cmd == "zero-shot") return run_zero_shot(argc - 1, argv + 1);
    if (cmd == "similarity") return run_similarity(argc - 1, argv + 1);
    if (cmd == "index") return run_index(argc - 1, argv + 1);
    if (cmd == "search") return run_search(argc - 1, argv + 1);
    if (cmd == "recommend") return run_recommend(argc - 1, argv + 1);
    if (cmd == "serve") return run_serve(argc - 1, argv + 1);
    if (cmd == "demo") return run_demo(argc - 1, argv + 1);
    if (cmd == "train") return run_train(argc - 1, argv + 1);
    if (cmd == "toy-eval") return run_toy_eval(argc - 1, argv + 1);
    if (cmd == "bench") {
      if (argc >= 3 && std::string(argv[2]) == "ops") return run_bench_ops(argc - 2, argv + 2);
      if (argc >= 3 && std::string(argv[2]) == "clip") return run_bench_clip(argc - 2, argv + 2);
      if (argc >= 3 && std::string(argv[2]) == "search") return run_bench_search(argc - 2, argv + 2);
      if (argc >= 3 && std::string(argv[2]) == "blip2") return run_bench_blip2(argc - 2, argv + 2);
      std::cerr << "vislang bench: expected a benchmark name: ops, clip, blip2, search\n";
      return 2;
    }
    std::cerr << "vislang: unknown command '" << cmd << "'\n\n";
    usage(std::cerr);
    return 2;
  } catch (const vislang::Error& e) {
    std::cerr << "vislang " << cmd << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "vislang " << cmd << ": unexpected error: " << e.what() << "\n";
    return 1;
  }
}
