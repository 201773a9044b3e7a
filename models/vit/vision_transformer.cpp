// models/vit/vision_transformer.cpp — the educational Vision Transformer (see vision_transformer.h):
// loading by name, deterministic random init, and the forward pass with a shape on every line.
//
// Mirrors the ViT of timm (timm/models/vision_transformer.py: PatchEmbed, Block, VisionTransformer
// with class_token=True, global_pool="token") except that attention uses separate q/k/v Linears
// (nn::MultiHeadAttention) instead of timm's fused `qkv`. The PyTorch twin used as the reference is
// tools/reference/make_vit_fixture.py.
#include "models/vit/vision_transformer.h"

#include <sstream>

namespace vislang::vit {

// ---- config -----------------------------------------------------------------------------------------
ViTConfig ViTConfig::preset(const std::string& name) {
  ViTConfig c;
  if (name == "tiny") {
    c.image_size = 32, c.patch_size = 8, c.width = 64, c.depth = 2, c.heads = 4, c.mlp_dim = 128;
  } else if (name == "vit-b/16") {
    c.image_size = 224, c.patch_size = 16, c.width = 768, c.depth = 12, c.heads = 12, c.mlp_dim = 3072;
  } else if (name == "vit-b/32") {
    c.image_size = 224, c.patch_size = 32, c.width = 768, c.depth = 12, c.heads = 12, c.mlp_dim = 3072;
  } else {
    VL_FAIL("vit: unknown preset '", name, "' (known: tiny, vit-b/16, vit-b/32)");
  }
  return c;
}

void ViTConfig::validate() const {
  VL_CHECK(image_size > 0 && patch_size > 0 && image_size % patch_size == 0, "vit config: image_size ", image_size,
           " must be a positive multiple of patch_size ", patch_size);
  VL_CHECK(width > 0 && heads > 0 && width % heads == 0, "vit config: width ", width,
           " must be a positive multiple of heads ", heads);
  VL_CHECK(depth >= 0, "vit config: depth must be >= 0, got ", depth);
  VL_CHECK(mlp_dim > 0, "vit config: mlp_dim must be > 0, got ", mlp_dim);
}

std::string ViTConfig::describe() const {
  std::ostringstream os;
  os << "image " << image_size << ", patch " << patch_size << ", width " << width << ", depth " << depth
     << ", heads " << heads << ", mlp " << mlp_dim << ", " << activation_name(act) << ", eps " << eps;
  return os.str();
}

// ---- one block ------------------------------------------------------------------------------------------
void Block::load(const WeightScope& s, const ViTConfig& c, DType dt) {
  norm1.load(s.sub("norm1"), c.width, c.eps, dt);                       // (C), (C)
  attn.load(s.sub("attn"), c.width, c.heads, dt);                       // 4 x ((C, C), (C))
  norm2.load(s.sub("norm2"), c.width, c.eps, dt);                       // (C), (C)
  fc1.load(s.sub("mlp").sub("fc1"), c.width, c.mlp_dim, true, dt);      // (M, C), (M)
  fc2.load(s.sub("mlp").sub("fc2"), c.mlp_dim, c.width, true, dt);      // (C, M), (C)
  act = c.act;
}

Tensor Block::forward(const Tensor& x, const StageHook& hook, const std::string& prefix) const {
  auto report = [&](const char* stage, const Tensor& t) {
    if (hook) hook(prefix + "." + stage, t);
  };
  // Attention sub-block: every token looks at every token (no mask in a ViT).
  Tensor h = norm1.forward(x);                                   // (B, T, C)
  report("norm1", h);
  Tensor a = attn.forward(h, h);                                 // (B, T, C)  q/k/v (B, H, T, C/H) inside
  report("attn", a);
  Tensor x1 = ops::add(x, a);                                    // (B, T, C)  residual
  report("residual1", x1);
  // MLP sub-block: the same two-layer MLP applied to each token independently.
  Tensor m = fc1.forward(norm2.forward(x1), act);                // (B, T, M)  GELU fused into fc1
  report("mlp.fc1+gelu", m);
  m = fc2.forward(m);                                            // (B, T, C)
  report("mlp.fc2", m);
  Tensor out = ops::add(x1, m);                                  // (B, T, C)  residual
  report("residual2", out);
  return out;
}

// ---- the model -----------------------------------------------------------------------------------------
void VisionTransformer::load(const WeightScope& s, const ViTConfig& c, DType dt) {
  c.validate();
  cfg_ = c;
  const int64_t C = c.width, P = c.patch_size, T = c.num_tokens();
  patch_embed.load(s.sub("patch_embed").sub("proj"), 3, C, P, /*stride=*/P, /*pad=*/0, /*bias=*/true, dt);
  cls_token = s.get("cls_token", {1, 1, C}, dt);   // (1, 1, C)
  pos_embed = s.get("pos_embed", {1, T, C}, dt);   // (1, N + 1, C)
  blocks.assign(static_cast<size_t>(c.depth), Block{});
  for (int64_t i = 0; i < c.depth; ++i) blocks[i].load(s.sub("blocks").sub(std::to_string(i)), c, dt);
  norm.load(s.sub("norm"), C, c.eps, dt);          // (C), (C)
}

VisionTransformer VisionTransformer::from_file(const std::string& path, const ViTConfig& c, Device device) {
  WeightScope root(SafeTensorsFile::open(path), device);
  VisionTransformer m;
  m.load(root, c);
  root.check_all_used();  // an extra tensor means the file is not this model: never load "mostly"
  return m;
}

VisionTransformer VisionTransformer::random(const ViTConfig& c, Generator& gen, Device device) {
  c.validate();
  auto normal = [&](const Shape& s) { return Tensor::randn(s, gen, DType::F32, device, 0.0, 0.02); };
  auto zeros = [&](const Shape& s) { return Tensor::zeros(s, DType::F32, device); };
  auto ones = [&](const Shape& s) { return Tensor::ones(s, DType::F32, device); };
  auto linear = [&](nn::Linear& l, int64_t in, int64_t out) {
    l.weight = normal({out, in});
    l.bias = zeros({out});
    ops::prepack_linear_weight(l.weight);  // as nn::Linear::load does: the model is for inference
  };
  auto layer_norm = [&](nn::LayerNorm& n) {
    n.weight = ones({c.width});
    n.bias = zeros({c.width});
    n.eps = c.eps;
  };
  const int64_t C = c.width, P = c.patch_size;
  VisionTransformer m;
  m.cfg_ = c;
  m.patch_embed.weight = normal({C, 3, P, P});
  m.patch_embed.bias = zeros({C});
  m.patch_embed.opt = {P, P, 0, 0, 1, 1};  // stride P, no padding
  ops::prepack_linear_weight(m.patch_embed.weight.view({C, 3 * P * P}));  // as nn::Conv2d::load does
  m.cls_token = normal({1, 1, C});
  m.pos_embed = normal({1, c.num_tokens(), C});
  m.blocks.assign(static_cast<size_t>(c.depth), Block{});
  for (Block& b : m.blocks) {
    layer_norm(b.norm1);
    layer_norm(b.norm2);
    b.attn.heads = c.heads;
    linear(b.attn.q_proj, C, C);
    linear(b.attn.k_proj, C, C);
    linear(b.attn.v_proj, C, C);
    linear(b.attn.out_proj, C, C);
    linear(b.fc1, C, c.mlp_dim);
    linear(b.fc2, c.mlp_dim, C);
    b.act = c.act;
  }
  layer_norm(m.norm);
  return m;
}

Tensor VisionTransformer::embed(const Tensor& pixels, const StageHook& hook) const {
  const int64_t S = cfg_.image_size, C = cfg_.width;
  VL_CHECK(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == S && pixels.size(3) == S,
           "vit: pixels must be (B, 3, ", S, ", ", S, "), got ", pixels.describe());
  const int64_t B = pixels.size(0);
  auto report = [&](const char* stage, const Tensor& t) {
    if (hook) hook(stage, t);
  };
  // A conv with kernel = stride = P cuts the image into non-overlapping P x P patches and applies the
  // same Linear(3·P·P → C) to each one: the "patch embedding".
  Tensor p = patch_embed.forward(pixels);                // (B, C, S/P, S/P)
  report("patch_embed.proj", p);
  p = p.flatten(2).transpose(1, 2);                      // (B, N, C)  view: one row per patch, row-major
  report("patches (flatten + transpose)", p);
  Tensor cls = cls_token.expand({B, 1, C});              // (B, 1, C)  view, the same vector for every image
  Tensor x = ops::concat({cls, p}, 1);                   // (B, N + 1, C)  token 0 is the CLS token
  report("cls_token + patches", x);
  x = ops::add(x, pos_embed);                            // (B, N + 1, C)  + (1, N + 1, C) broadcast
  report("+ pos_embed", x);
  return x;
}

Tensor VisionTransformer::forward(const Tensor& pixels, const StageHook& hook) const {
  InferenceMode guard;
  Tensor x = embed(pixels, hook);                        // (B, N + 1, C)
  for (size_t i = 0; i < blocks.size(); ++i)
    x = blocks[i].forward(x, hook, "blocks." + std::to_string(i));  // (B, N + 1, C)
  x = norm.forward(x);                                   // (B, N + 1, C)
  if (hook) hook("norm", x);
  Tensor out = x.select(1, 0).contiguous();              // (B, C)  the CLS token
  if (hook) hook("cls (token 0)", out);
  return out;
}

std::vector<std::pair<std::string, Tensor>> VisionTransformer::named_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  auto put = [&](const std::string& name, const Tensor& t) { out.emplace_back(name, t); };
  auto linear = [&](const std::string& pre, const nn::Linear& l) {
    put(pre + ".weight", l.weight);
    put(pre + ".bias", l.bias);
  };
  auto layer_norm = [&](const std::string& pre, const nn::LayerNorm& n) {
    put(pre + ".weight", n.weight);
    put(pre + ".bias", n.bias);
  };
  put("patch_embed.proj.weight", patch_embed.weight);
  put("patch_embed.proj.bias", patch_embed.bias);
  put("cls_token", cls_token);
  put("pos_embed", pos_embed);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const Block& b = blocks[i];
    const std::string p = "blocks." + std::to_string(i);
    layer_norm(p + ".norm1", b.norm1);
    linear(p + ".attn.q_proj", b.attn.q_proj);
    linear(p + ".attn.k_proj", b.attn.k_proj);
    linear(p + ".attn.v_proj", b.attn.v_proj);
    linear(p + ".attn.out_proj", b.attn.out_proj);
    layer_norm(p + ".norm2", b.norm2);
    linear(p + ".mlp.fc1", b.fc1);
    linear(p + ".mlp.fc2", b.fc2);
  }
  layer_norm("norm", norm);
  return out;
}

}  // namespace vislang::vit
