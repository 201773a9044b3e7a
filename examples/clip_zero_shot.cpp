// examples/clip_zero_shot.cpp — zero-shot image classification with CLIP: turn each label into a
// sentence, embed the sentences and the images, and read the image's label off the cosine similarities.
//
//   image → preprocess → vision tower → projection ┐
//                                                   ├ normalize → exp(logit_scale) · cos → softmax over labels
//   "a photo of a {label}" → tokenizer → text tower ┘
//
//   build/bin/clip_zero_shot                                  the committed random-weight fixture model
//   build/bin/clip_zero_shot --model ~/.cache/vislang/ViT-B-32.safetensors   a real model
//                            [--images DIR] [--labels "cat,dog,rocket"] [--vocab bpe_simple_vocab_16e6.txt.gz]
// (a real model: scripts/download_model.sh ViT-B/32)
//
// What it shows: the whole inference path through the public API — ClipModel::load, ClipTokenizer,
// preprocess_files, encode_text / encode_image, logits_per_image — and where the pieces come from.
// What it leaves out: prompt ensembling (OpenAI averages 80 templates per class), batching of large
// image sets, the GPU (ClipModel::load(path, Device::cuda(0)) is the only change), and accuracy: the
// default fixture model has random weights, so its labels are meaningless; it only proves the path runs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "examples/example_util.h"
#include "image/clip_preprocess.h"
#include "models/clip/clip.h"
#include "tokenizer/clip_tokenizer.h"

using namespace vislang;

int main(int argc, char** argv) {
  example::Args args(argc, argv);
  if (args.has("help")) {
    std::printf("usage: clip_zero_shot [--model PATH] [--images DIR] [--labels a,b,c] [--vocab FILE.txt.gz]\n");
    return 0;
  }
  try {
    // 1. The model: a Hugging Face CLIP folder or a converted .safetensors.
    const std::string model_arg = args.get("model");
    const bool is_fixture = model_arg.empty() || model_arg.find("tests/fixtures/") != std::string::npos;
    const std::string model_path = args.get("model", example::fixture_model());
    clip::ClipModel model = clip::ClipModel::load(model_path);
    const clip::ClipConfig& cfg = model.config();
    std::printf("model: %s\n  vision %s %lldx%lld, text width %lld, embedding %lld, logit_scale exp(%.4f) = %.2f\n",
                model_path.c_str(), cfg.vision.type.c_str(), (long long)cfg.vision.image_size,
                (long long)cfg.vision.image_size, (long long)cfg.text.width, (long long)cfg.projection_dim,
                model.logit_scale(), std::exp(model.logit_scale()));
    if (is_fixture)
      std::printf("  NOTE: this is the committed test fixture, a tiny CLIP with RANDOM weights: the labels below are\n"
                  "  meaningless. For real predictions: scripts/download_model.sh ViT-B/32, then\n"
                  "  clip_zero_shot --model ~/.cache/vislang/ViT-B-32.safetensors\n");

    // 2. The tokenizer (the same BPE vocabulary for every CLIP model).
    std::string where;
    std::optional<ClipTokenizer> tok = example::find_tokenizer(args, model_path, where);
    if (!tok) {
      std::printf("\nNo CLIP tokenizer vocabulary found; looked for:%s\n"
                  "Pass --vocab PATH/bpe_simple_vocab_16e6.txt.gz (shipped with OpenAI's CLIP and open_clip), or put\n"
                  "vocab.json + merges.txt (Hugging Face CLIPTokenizer) in the model folder. Nothing to do.\n",
                  where.c_str());
      return 0;
    }
    std::printf("tokenizer: %s\n", where.c_str());

    // 3. Labels → prompts → token ids (L, 77) → text embeddings (L, E).
    std::vector<std::string> labels;
    std::stringstream ls(args.get("labels", "astronaut,cat,cup of coffee,rocket,cameraman,galaxy"));
    for (std::string l; std::getline(ls, l, ',');)
      if (!l.empty()) labels.push_back(l);
    const int64_t L = static_cast<int64_t>(labels.size()), T = cfg.text.context_length;
    std::vector<int32_t> ids;
    for (const std::string& label : labels) {
      std::vector<int32_t> row = tok->tokenize("a photo of a " + label, static_cast<int>(T), /*truncate=*/true);
      ids.insert(ids.end(), row.begin(), row.end());
    }
    Tensor text_emb = model.encode_text(Tensor::from_vector(ids, {L, T}, DType::I64));  // (L, E)
    std::vector<int32_t> first = tok->tokenize("a photo of a " + labels[0], static_cast<int>(T));
    std::printf("prompts: \"a photo of a {label}\" for %lld labels; \"a photo of a %s\" -> ids", (long long)L,
                labels[0].c_str());
    for (int32_t id : first) {
      if (id == 0) break;
      std::printf(" %d", id);
    }
    std::printf(" (then zeros to %lld)\n", (long long)T);

    // 4. Images → preprocess (resize shorter side, center crop, normalize) → (N, 3, S, S) → (N, E).
    std::string dir = args.get("images");
    if (dir.empty()) dir = example::data_dir().empty() ? "../shared/data/images" : example::data_dir() + "/images";
    std::vector<std::string> paths = example::list_images(dir);
    if (paths.empty()) {
      std::printf("\nNo images in %s (pass --images DIR). Nothing to classify.\n", dir.c_str());
      return 0;
    }
    std::vector<PreprocessResult> pre = preprocess_files(paths, example::preprocess_for(cfg, model_path));
    for (const PreprocessResult& r : pre)
      if (!r.ok) std::printf("skipped %s: %s\n", r.path.c_str(), r.error.c_str());
    std::vector<size_t> index;
    Tensor pixels = stack_ok(pre, &index);          // (N, 3, S, S)
    Tensor image_emb = model.encode_image(pixels);  // (N, E)

    // 5. Probabilities: softmax over labels of exp(logit_scale) · cos(image, text).
    Tensor probs = ops::softmax(model.logits_per_image(image_emb, text_emb), -1);  // (N, L)
    std::vector<float> p = probs.to_vector<float>();
    std::printf("\n%-24s  top-3 labels (probability)\n", "image");
    for (size_t i = 0; i < index.size(); ++i) {
      std::vector<int64_t> order(static_cast<size_t>(L));
      std::iota(order.begin(), order.end(), 0);
      const float* row = &p[i * L];
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return row[a] > row[b]; });
      std::printf("%-24s ", std::filesystem::path(pre[index[i]].path).filename().string().c_str());
      for (int64_t k = 0; k < std::min<int64_t>(3, L); ++k)
        std::printf(" %s (%.3f)%s", labels[order[k]].c_str(), row[order[k]], k + 1 < std::min<int64_t>(3, L) ? "," : "");
      std::printf("\n");
    }
    if (is_fixture) std::printf("(random-weight fixture model: these probabilities say nothing about the images)\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clip_zero_shot: %s\n", e.what());
    return 1;
  }
}
