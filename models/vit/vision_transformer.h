// models/vit/vision_transformer.h — a standalone, educational Vision Transformer (Dosovitskiy et al.
// 2020, "An Image is Worth 16x16 Words"): the image classifier backbone, without CLIP around it.
//
// Where it sits: image → preprocess → **ViT** → CLS vector (B, C) → (a classifier head, or a
// projection into a joint space as in CLIP's vision tower, models/clip/clip.h).
//
//   pixels (B, 3, S, S)
//     patch_embed.proj: Conv2d 3→C, kernel P, stride P, WITH bias → (B, C, S/P, S/P)
//     flatten + transpose                                         → (B, N, C),      N = (S/P)²
//     prepend cls_token                                           → (B, N + 1, C)
//     + pos_embed (learned)                                       → (B, N + 1, C)
//     blocks.0 .. blocks.{depth-1}: pre-LN residual blocks        → (B, N + 1, C)
//         x = x + attn(norm1(x));  x = x + fc2(gelu(fc1(norm2(x))))
//     norm (final LayerNorm)                                      → (B, N + 1, C)
//     take token 0 (the CLS token)                                → (B, C)
//
// How it differs from CLIP's ViT (models/clip/clip.h VisionTransformer): the patch conv has a bias,
// there is no LayerNorm before the blocks (CLIP's `pre_layrnorm`), the final LayerNorm runs on every
// token before the CLS token is taken, the activation is erf GELU (not quick_gelu), LayerNorm eps is
// 1e-6, and the weight names are the short ones below (timm-like, but q/k/v are separate Linears).
//
// Weight names (all f32 in a .safetensors; `load` checks every shape and names the full path):
//   patch_embed.proj.weight (C, 3, P, P)      patch_embed.proj.bias (C)
//   cls_token (1, 1, C)                       pos_embed (1, N + 1, C)
//   blocks.{i}.norm1.{weight,bias} (C)        blocks.{i}.norm2.{weight,bias} (C)
//   blocks.{i}.attn.{q_proj,k_proj,v_proj,out_proj}.weight (C, C), .bias (C)
//   blocks.{i}.mlp.fc1.weight (M, C), .bias (M)   blocks.{i}.mlp.fc2.weight (C, M), .bias (C)
//   norm.{weight,bias} (C)
// tools/reference/make_vit_fixture.py builds the same module in plain PyTorch with these names, and
// tests/test_vit.cpp checks this implementation against it.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "nn/modules.h"

namespace vislang::vit {

struct ViTConfig {
  int64_t image_size = 224;  // S: input is (B, 3, S, S)
  int64_t patch_size = 16;   // P: S must be a multiple of P
  int64_t width = 768;       // C: token width (hidden size)
  int64_t depth = 12;        // number of transformer blocks
  int64_t heads = 12;        // attention heads; C must be a multiple of heads
  int64_t mlp_dim = 3072;    // M: hidden width of each block's MLP
  double eps = 1e-6;         // LayerNorm epsilon (timm / the original ViT; torch's default is 1e-5)
  Activation act = Activation::GELU;  // erf GELU, torch.nn.GELU()

  int64_t grid() const { return image_size / patch_size; }    // patches per side
  int64_t num_patches() const { return grid() * grid(); }     // N
  int64_t num_tokens() const { return num_patches() + 1; }    // N + 1 (with the CLS token)

  // "tiny"     image 32, patch 8, width 64, depth 2, heads 4, mlp 128 (the fixture and the walkthrough;
  //            MLP ratio 2, not 4, so that tests/fixtures/vit_tiny.safetensors stays under 200 KB)
  // "vit-b/16" image 224, patch 16, width 768, depth 12, heads 12, mlp 3072 (ViT-Base/16)
  // "vit-b/32" the same with patch 32
  static ViTConfig preset(const std::string& name);
  void validate() const;  // throws naming the bad field
  std::string describe() const;  // "image 32, patch 8, width 64, depth 2, heads 4, mlp 128"
};

// Called by forward() after each stage with a name ("patch_embed.proj", "blocks.0.attn", ...) and the
// stage's output. Used by examples/vit_walkthrough.cpp to print the shape at every step.
using StageHook = std::function<void(const std::string& name, const Tensor& value)>;

// One pre-LN transformer block.
struct Block {
  nn::LayerNorm norm1, norm2;
  nn::MultiHeadAttention attn;  // q_proj, k_proj, v_proj, out_proj (C, C) with biases
  nn::Linear fc1, fc2;          // mlp.fc1 (M, C), mlp.fc2 (C, M)
  Activation act = Activation::GELU;

  void load(const WeightScope& s, const ViTConfig& c, DType dt = DType::F32);
  // x (B, T, C) -> (B, T, C). `prefix` ("blocks.3") names the stages reported to `hook`.
  Tensor forward(const Tensor& x, const StageHook& hook = {}, const std::string& prefix = "") const;
};

class VisionTransformer {
 public:
  // Reads every weight under `s` (see the names above). Use WeightScope::check_all_used() afterwards
  // to reject files with extra tensors; from_file() does both.
  void load(const WeightScope& s, const ViTConfig& c, DType dt = DType::F32);
  // Opens a .safetensors holding exactly this model's tensors (no prefix) and loads it.
  static VisionTransformer from_file(const std::string& path, const ViTConfig& c, Device device = Device::cpu());
  // Deterministic random weights (no file needed): Linear/Conv weights, cls_token and pos_embed
  // ~ N(0, 0.02²) (timm's init, untruncated), biases 0, LayerNorm weight 1 / bias 0.
  static VisionTransformer random(const ViTConfig& c, Generator& gen, Device device = Device::cpu());

  // pixels (B, 3, S, S) f32 -> the final-norm CLS vector (B, C).
  Tensor forward(const Tensor& pixels, const StageHook& hook = {}) const;
  // The stages before the blocks: pixels (B, 3, S, S) -> (B, N + 1, C) (patches + cls + pos).
  Tensor embed(const Tensor& pixels, const StageHook& hook = {}) const;

  // Every tensor with its weight name, in load order (for saving, and for tests that corrupt one).
  std::vector<std::pair<std::string, Tensor>> named_tensors() const;
  const ViTConfig& config() const { return cfg_; }

  nn::Conv2d patch_embed;   // patch_embed.proj: (C, 3, P, P) + (C), stride P
  Tensor cls_token;         // (1, 1, C)
  Tensor pos_embed;         // (1, N + 1, C)
  std::vector<Block> blocks;
  nn::LayerNorm norm;       // (C)

 private:
  ViTConfig cfg_;
};

}  // namespace vislang::vit
