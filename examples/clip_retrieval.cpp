// examples/clip_retrieval.cpp — image search with CLIP: embed a folder of images once, keep the
// L2-normalized embeddings in memory, then rank them by cosine similarity against a text query or
// against another image.
//
//   index:  images → preprocess → encode_image → normalize → rows of a (N, E) matrix
//   search: query (text → encode_text, or image → encode_image) → normalize → (1, E)
//           cosines = query · indexᵀ (1, N) → top-k
//
//   build/bin/clip_retrieval                                   fixture model over ../shared/data/images
//   build/bin/clip_retrieval --model ~/.cache/vislang/ViT-B-32.safetensors [--images DIR]
//                            [--query "a cat"] [--image-query PATH] [--k 3] [--vocab FILE.txt.gz]
//
// What it shows: a tiny retrieval engine in ~60 lines (class CLIPRetrieval below) built from
// ClipModel::encode_image / encode_text, ops::l2_normalize, ops::matmul and ops::topk.
// What it leaves out: approximate nearest-neighbour indexes (FAISS, HNSW) for millions of images,
// saving the index to disk, the GPU, and meaningful rankings with the default model: the fixture has
// random weights, so text queries rank at random — but an image query still finds itself first (cosine
// 1.000), which checks the plumbing. Use a real model (scripts/download_model.sh ViT-B/32) for the rest.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "examples/example_util.h"
#include "image/clip_preprocess.h"
#include "models/clip/clip.h"
#include "tokenizer/clip_tokenizer.h"

using namespace vislang;

// An in-memory index of normalized image embeddings.
class CLIPRetrieval {
 public:
  struct Hit {
    std::string path;
    double cosine;
  };

  CLIPRetrieval(const clip::ClipModel& model, const ClipTokenizer& tok, PreprocessConfig pre)
      : model_(model), tok_(tok), pre_(pre) {}

  // Embeds the images and appends them to the index. Returns "path: reason" for files that failed.
  std::vector<std::string> add_images(const std::vector<std::string>& paths) {
    std::vector<PreprocessResult> res = preprocess_files(paths, pre_);
    std::vector<std::string> failed;
    for (const PreprocessResult& r : res)
      if (!r.ok) failed.push_back(r.path + ": " + r.error);
    if (failed.size() == res.size()) return failed;
    std::vector<size_t> ok;
    Tensor pixels = stack_ok(res, &ok);                                    // (n, 3, S, S)
    Tensor emb = ops::l2_normalize(model_.encode_image(pixels), -1);      // (n, E), unit rows
    index_ = index_.defined() ? ops::concat({index_, emb}, 0) : emb;      // (N, E)
    for (size_t i : ok) paths_.push_back(res[i].path);
    return failed;
  }

  std::vector<Hit> search_by_text(const std::string& query, int64_t k) const {
    const int64_t T = model_.config().text.context_length;
    std::vector<int32_t> ids = tok_.tokenize(query, static_cast<int>(T), /*truncate=*/true);
    return search(model_.encode_text(Tensor::from_vector(ids, {1, T}, DType::I64)), k);  // (1, E)
  }

  std::vector<Hit> search_by_image(const std::string& path, int64_t k) const {
    Tensor pixels = preprocess(load_image(path), pre_).unsqueeze(0);  // (1, 3, S, S)
    return search(model_.encode_image(pixels), k);                   // (1, E)
  }

  size_t size() const { return paths_.size(); }

 private:
  // query (1, E), not normalized → the k best (path, cosine), best first.
  std::vector<Hit> search(const Tensor& query, int64_t k) const {
    VL_CHECK(index_.defined(), "CLIPRetrieval: the index is empty (add_images first)");
    Tensor q = ops::l2_normalize(query, -1);                  // (1, E)
    Tensor cos = ops::matmul(q, index_, false, true);         // (1, N) = q · indexᵀ
    ops::TopK top = ops::topk(cos, std::min<int64_t>(k, static_cast<int64_t>(paths_.size())), -1);  // sorted
    std::vector<float> v = top.values.to_vector<float>();
    std::vector<int64_t> i = top.indices.to_vector<int64_t>();
    std::vector<Hit> hits;
    for (size_t j = 0; j < v.size(); ++j) hits.push_back({paths_[static_cast<size_t>(i[j])], v[j]});
    return hits;
  }

  const clip::ClipModel& model_;
  const ClipTokenizer& tok_;
  PreprocessConfig pre_;
  Tensor index_;  // (N, E) unit rows
  std::vector<std::string> paths_;
};

static void print_hits(const std::string& title, const std::vector<CLIPRetrieval::Hit>& hits) {
  std::printf("\n%s\n", title.c_str());
  for (size_t i = 0; i < hits.size(); ++i)
    std::printf("  %zu. %-24s cosine %.4f\n", i + 1, std::filesystem::path(hits[i].path).filename().string().c_str(),
                hits[i].cosine);
}

int main(int argc, char** argv) {
  example::Args args(argc, argv);
  if (args.has("help")) {
    std::printf("usage: clip_retrieval [--model PATH] [--images DIR] [--query TEXT] [--image-query PATH] [--k N] "
                "[--vocab FILE.txt.gz]\n");
    return 0;
  }
  try {
    const std::string model_arg = args.get("model");
    const bool is_fixture = model_arg.empty() || model_arg.find("tests/fixtures/") != std::string::npos;
    const std::string model_path = args.get("model", example::fixture_model());
    clip::ClipModel model = clip::ClipModel::load(model_path);
    std::printf("model: %s (embedding %lld)\n", model_path.c_str(), (long long)model.config().projection_dim);
    if (is_fixture)
      std::printf("  NOTE: the committed test fixture has RANDOM weights: text rankings are meaningless.\n"
                  "  For real search: scripts/download_model.sh ViT-B/32; --model ~/.cache/vislang/ViT-B-32.safetensors\n");

    std::string where;
    std::optional<ClipTokenizer> tok = example::find_tokenizer(args, model_path, where);
    if (!tok) {
      std::printf("\nNo CLIP tokenizer vocabulary found; looked for:%s\nPass --vocab PATH/bpe_simple_vocab_16e6.txt.gz. "
                  "Nothing to do.\n", where.c_str());
      return 0;
    }

    // Build the index over a folder of images.
    std::string dir = args.get("images");
    if (dir.empty()) dir = example::data_dir().empty() ? "../shared/data/images" : example::data_dir() + "/images";
    std::vector<std::string> paths = example::list_images(dir);
    if (paths.empty()) {
      std::printf("\nNo images in %s (pass --images DIR). Nothing to index.\n", dir.c_str());
      return 0;
    }
    CLIPRetrieval engine(model, *tok, example::preprocess_for(model.config(), model_path));
    for (const std::string& f : engine.add_images(paths)) std::printf("skipped %s\n", f.c_str());
    std::printf("indexed %zu images from %s\n", engine.size(), dir.c_str());

    const int64_t k = std::stoll(args.get("k", "3"));
    std::vector<std::string> queries;
    if (args.has("query")) queries.push_back(args.get("query"));
    else queries = {"a photo of a cat", "a rocket launch", "a cup of coffee"};
    for (const std::string& q : queries) print_hits("text query \"" + q + "\":", engine.search_by_text(q, k));

    std::string image_query = args.get("image-query");
    if (image_query.empty()) image_query = paths.size() > 1 ? paths[1] : paths[0];
    print_hits("image query " + std::filesystem::path(image_query).filename().string() +
                   " (it is in the index, so it should come first with cosine 1):",
               engine.search_by_image(image_query, k));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clip_retrieval: %s\n", e.what());
    return 1;
  }
}
