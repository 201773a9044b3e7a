// examples/vit_walkthrough.cpp — a Vision Transformer, one stage at a time, with the shape of every
// intermediate tensor printed: image → patches → tokens (+ CLS, + positions) → each block (attention,
// MLP) → final norm → the CLS vector.
//
//   build/bin/vit_walkthrough                         the tiny educational ViT (models/vit/), random weights
//   build/bin/vit_walkthrough --image photo.jpg       ... on your own picture (default: astronaut.png)
//   build/bin/vit_walkthrough --preset vit-b/16       ... at ViT-Base/16 size (random weights, a few s)
//   build/bin/vit_walkthrough --model PATH            a CLIP vision tower, stage by stage: a Hugging Face
//                                                     CLIP folder or a converted .safetensors
//                                                     (scripts/download_model.sh ViT-B/32)
//
// What it shows: the data flow and the shapes, one plain-loop check that the patch-embedding conv is
// "one Linear per patch", and (with --model) that the stages composed by hand give exactly what
// ClipModel::encode_image gives.
// What it leaves out: training, classification heads, batching beyond one image, the GPU (see
// docs/engine.md), and what the numbers mean — with random weights they mean nothing; the shapes are
// the point. The ResNet CLIP towers are summarized, not walked (their stages are private to
// models/clip/resnet.cpp; docs/clip.md walks through them).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "examples/example_util.h"
#include "image/clip_preprocess.h"
#include "models/clip/clip.h"
#include "models/vit/vision_transformer.h"

using namespace vislang;

// One printed line per stage: name, shape, and what happened.
static void show(const std::string& name, const Tensor& t, const std::string& note = "") {
  std::printf("  %-32s %-18s %s\n", name.c_str(), shape_str(t.shape()).c_str(), note.c_str());
}

// The image the walkthrough looks at: --image, else astronaut.png from the shared data, else noise.
static Tensor load_pixels(const example::Args& args, const PreprocessConfig& pre, std::string& what) {
  std::string path = args.get("image");
  if (path.empty()) {
    std::string d = example::data_dir();
    if (!d.empty() && std::filesystem::exists(d + "/images/astronaut.png")) path = d + "/images/astronaut.png";
  }
  if (!path.empty()) {
    Image img = load_image(path);
    what = path + " (" + std::to_string(img.width) + "x" + std::to_string(img.height) + " RGB, resized and cropped to " +
           std::to_string(pre.size) + "x" + std::to_string(pre.size) + ", normalized)";
    return preprocess(img, pre).unsqueeze(0);  // (1, 3, S, S)
  }
  Generator g(1);
  what = "random pixels (no image found; pass --image PATH)";
  return Tensor::randn({1, 3, pre.size, pre.size}, g);  // (1, 3, S, S)
}

// Notes printed next to the stages the model reports through its hook.
static std::string note_for(const std::string& stage, const vit::ViTConfig& c) {
  const std::string C = std::to_string(c.width), M = std::to_string(c.mlp_dim), N = std::to_string(c.num_patches());
  if (stage == "patch_embed.proj")
    return "conv " + std::to_string(c.patch_size) + "x" + std::to_string(c.patch_size) + " stride " +
           std::to_string(c.patch_size) + ": one " + C + "-vector per patch, on a " + std::to_string(c.grid()) + "x" +
           std::to_string(c.grid()) + " grid";
  if (stage == "patches (flatten + transpose)") return "a sequence of " + N + " patch tokens (a view, no copy)";
  if (stage == "cls_token + patches") return "the learned CLS token prepended: token 0";
  if (stage == "+ pos_embed") return "learned position embedding added (tokens know where they came from)";
  auto ends = [&](const char* s) {
    std::string t(s);
    return stage.size() >= t.size() && stage.compare(stage.size() - t.size(), t.size(), t) == 0;
  };
  if (ends(".norm1")) return "LayerNorm over the " + C + " features of each token";
  if (ends(".attn"))
    return std::to_string(c.heads) + " heads of " + std::to_string(c.width / c.heads) + ": every token attends to all " +
           std::to_string(c.num_tokens());
  if (ends(".residual1")) return "x + attn(norm1(x))";
  if (ends(".mlp.fc1+gelu")) return "Linear " + C + " -> " + M + ", GELU (fused into the matmul)";
  if (ends(".mlp.fc2")) return "Linear " + M + " -> " + C;
  if (ends(".residual2")) return "x + mlp(norm2(x))";
  if (stage == "norm") return "final LayerNorm on every token";
  if (stage == "cls (token 0)") return "the image representation";
  return "";
}

// ---- part 1: the educational ViT of models/vit/ ---------------------------------------------------
static int walk_educational_vit(const example::Args& args) {
  vit::ViTConfig c = vit::ViTConfig::preset(args.get("preset", "tiny"));
  std::printf("Educational ViT (models/vit/vision_transformer.h), preset '%s': %s\n", args.get("preset", "tiny").c_str(),
              c.describe().c_str());
  Generator gen(std::stoull(args.get("seed", "42")));
  vit::VisionTransformer model = vit::VisionTransformer::random(c, gen);  // deterministic, no file needed
  std::printf("Random weights (seed %s): the numbers are meaningless, the shapes are the point.\n\n",
              args.get("seed", "42").c_str());

  PreprocessConfig pre;
  pre.size = static_cast<int>(c.image_size);
  std::string what;
  Tensor pixels = load_pixels(args, pre, what);  // (1, 3, S, S)
  std::printf("Input: %s\n", what.c_str());
  std::printf("  %-32s %-18s %s\n", "stage", "shape", "what happened");
  show("pixels", pixels, "(B, 3, S, S): " + std::to_string(c.num_patches()) + " patches of 3x" +
                             std::to_string(c.patch_size) + "x" + std::to_string(c.patch_size) + " = " +
                             std::to_string(3 * c.patch_size * c.patch_size) + " numbers each");

  // The model reports each stage through its hook; print them as they happen.
  std::string current_block;
  Tensor patch_out;
  Tensor cls = model.forward(pixels, [&](const std::string& stage, const Tensor& t) {
    std::string block = stage.rfind("blocks.", 0) == 0 ? stage.substr(0, stage.find('.', 7)) : "";
    if (!block.empty() && block != current_block) std::printf("  -- %s --\n", block.c_str());
    current_block = block;
    if (stage == "patch_embed.proj") patch_out = t;
    show(stage, t, note_for(stage, c));
  });

  // Plain loops: the conv output at grid cell (gy, gx) is W · (that patch's pixels) + b.
  const int64_t P = c.patch_size, gy = 1, gx = 2, ch = 5;
  const std::vector<float> px = pixels.to_vector<float>(), w = model.patch_embed.weight.to_vector<float>(),
                           b = model.patch_embed.bias.to_vector<float>();
  const int64_t S = c.image_size;
  double acc = b[ch];
  for (int64_t k = 0; k < 3; ++k)
    for (int64_t y = 0; y < P; ++y)
      for (int64_t x = 0; x < P; ++x)
        acc += double(w[((ch * 3 + k) * P + y) * P + x]) * px[(k * S + gy * P + y) * S + gx * P + x];
  double conv = patch_out.select(0, 0).select(0, ch).select(0, gy).select(0, gx).item();
  std::printf("\nCheck with plain loops: feature %lld of the patch at grid (%lld, %lld) = %.6f by hand, %.6f from the "
              "conv (|diff| %.1e)\n", (long long)ch, (long long)gy, (long long)gx, acc, conv, std::fabs(acc - conv));
  std::vector<float> v = cls.to_vector<float>();
  std::printf("Output: CLS vector %s, first values %.4f %.4f %.4f %.4f ...\n", shape_str(cls.shape()).c_str(), v[0], v[1],
              v[2], v[3]);
  return 0;
}

// ---- part 2: a CLIP vision tower, composed by hand from its public modules -----------------------
static int walk_clip(const example::Args& args) {
  const std::string path = args.get("model");
  clip::ClipConfig cfg = example::read_clip_config(path);
  const clip::VisionConfig& v = cfg.vision;
  std::printf("CLIP model %s (%s)\n", path.c_str(), cfg.name.c_str());
  std::string what;
  Tensor pixels = load_pixels(args, example::preprocess_for(cfg, path), what);  // (1, 3, S, S)
  std::printf("Input: %s\n", what.c_str());
  clip::ClipModel full = clip::ClipModel::load(path);  // validates every tensor; the reference for the check below

  if (v.type != "vit") {
    // ModifiedResNet: stem → 4 stages → attention pool (models/clip/resnet.cpp); shapes from the config.
    const int64_t S = v.image_size, w = v.width;
    std::printf("ModifiedResNet tower (stages are private to models/clip/resnet.cpp; shapes from the config):\n");
    auto line = [](const std::string& name, const Shape& shape, const std::string& note) {
      std::printf("  %-32s %-18s %s\n", name.c_str(), shape_str(shape).c_str(), note.c_str());
    };
    line("pixels", {1, 3, S, S}, "(B, 3, S, S)");
    line("stem", {1, w, S / 4, S / 4}, "3 convs (the first stride 2) + BN + ReLU, then avgpool 2");
    for (int i = 0; i < 4; ++i) {
      const int64_t r = S / (4 << i);  // layer1 keeps S/4; layer2..4 halve it (avgpool inside the block)
      line("layer" + std::to_string(i + 1), {1, (w * 4) << i, r, r},
           std::to_string(v.resnet_layers[i]) + " Bottleneck(s)" + (i ? ", anti-aliased stride 2" : ""));
    }
    Tensor emb = full.encode_image(pixels);
    show("attnpool (mean-token query)", emb, "the image embedding (no separate projection)");
    return 0;
  }

  // Load the vision tower's modules under their Hugging Face names.
  WeightScope root(SafeTensorsFile::open(std::filesystem::is_directory(path) ? path + "/model.safetensors" : path));
  clip::VisionTransformer tower;
  tower.load(root.sub("vision_model"), v, DType::F32);
  nn::Linear projection;
  projection.load(root.sub("visual_projection"), v.width, cfg.projection_dim, false);
  std::printf("Vision tower: image %lld, patch %lld, width %lld, %lld layers, %lld heads, mlp %lld, %s; projection "
              "%lld -> %lld\n\n", (long long)v.image_size, (long long)v.patch_size, (long long)v.width,
              (long long)v.layers, (long long)v.heads, (long long)v.mlp_dim, activation_name(v.act),
              (long long)v.width, (long long)cfg.projection_dim);

  InferenceMode guard;
  const int64_t C = v.width, g = v.image_size / v.patch_size;
  std::printf("  %-32s %-18s %s\n", "stage", "shape", "what happened");
  show("pixels", pixels, "(B, 3, S, S)");
  Tensor x = tower.patch_embedding.forward(pixels);                // (1, C, g, g)
  show("embeddings.patch_embedding", x, "conv P x P stride P, no bias: a " + std::to_string(g) + "x" +
                                            std::to_string(g) + " grid of " + std::to_string(C) + "-vectors");
  x = x.flatten(2).transpose(1, 2);                                // (1, N, C)
  show("flatten + transpose", x, std::to_string(g * g) + " patch tokens");
  x = ops::concat({tower.class_embedding.view({1, 1, C}), x}, 1);  // (1, N + 1, C)
  show("+ class_embedding", x, "CLS token prepended");
  x = ops::add(x, tower.position_embedding);                       // (1, N + 1, C)
  show("+ position_embedding", x, "learned positions");
  x = tower.pre_layrnorm.forward(x);                               // (1, N + 1, C)
  show("pre_layrnorm", x, "CLIP-specific: a LayerNorm before the blocks (HF's spelling)");
  for (size_t i = 0; i < tower.encoder.layers.size(); ++i) {
    const clip::EncoderLayer& L = tower.encoder.layers[i];
    const std::string p = "encoder.layers." + std::to_string(i);
    std::printf("  -- %s --\n", p.c_str());
    Tensor h = L.layer_norm1.forward(x);                                   // (1, T, C)
    Tensor a = L.self_attn.forward(h, h);                                  // (1, T, C)
    show(p + ".self_attn", a, std::to_string(v.heads) + " heads, no mask: every token sees every token");
    x = ops::add(x, a);                                                    // (1, T, C)
    Tensor m = L.fc1.forward(L.layer_norm2.forward(x), L.act);             // (1, T, mlp)
    show(p + ".mlp.fc1 + act", m, std::string(activation_name(L.act)) + (L.act == Activation::QUICK_GELU ?
                                   " = x * sigmoid(1.702 x)" : ""));
    x = ops::add(x, L.fc2.forward(m));                                     // (1, T, C)
    show(p + " (out)", x, "x + attn(ln1 x), then + mlp(ln2 x)");
  }
  Tensor pooled = tower.post_layernorm.forward(x.select(1, 0));    // (1, C)
  show("post_layernorm(token 0)", pooled, "CLS token only (the ViT of models/vit/ norms every token)");
  Tensor emb = projection.forward(pooled);                         // (1, E)
  show("visual_projection", emb, "no bias: into the joint image-text space");

  Tensor ref = full.encode_image(pixels);
  double diff = 0;
  std::vector<float> a = emb.to_vector<float>(), r = ref.to_vector<float>();
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, double(std::fabs(a[i] - r[i])));
  std::printf("\nCheck: the stages above vs ClipModel::encode_image: max |diff| %.2e\n", diff);
  return 0;
}

int main(int argc, char** argv) {
  example::Args args(argc, argv);
  if (args.has("help")) {
    std::printf("usage: vit_walkthrough [--preset tiny|vit-b/16|vit-b/32] [--seed N] [--image PATH]\n"
                "       vit_walkthrough --model CLIP_FOLDER_OR_SAFETENSORS [--image PATH]\n");
    return 0;
  }
  try {
    return args.has("model") ? walk_clip(args) : walk_educational_vit(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit_walkthrough: %s\n", e.what());
    return 1;
  }
}
