// models/clip/resnet.cpp — OpenAI's ModifiedResNet image tower (RN50, RN101, RN50x4, ...).
//
// Mirrors ModifiedResNet / Bottleneck / AttentionPool2d in OpenAI's clip/model.py
// (https://github.com/openai/CLIP/blob/main/clip/model.py) and open_clip/modified_resnet.py, module
// for module and weight name for weight name, under the `visual.` prefix:
//
//   pixels (B, 3, S, S)
//     stem:    conv1 3→w/2 s2 + bn1 + relu → conv2 + bn2 + relu → conv3 w/2→w + bn3 + relu → avgpool 2
//              → (B, w, S/4, S/4)
//     layer1..layer4: anti-aliased Bottlenecks, planes w, 2w, 4w, 8w (×4 expansion), strides 1, 2, 2, 2
//              → (B, 32w, S/32, S/32)
//     attnpool: tokens = [mean; HW tokens] + positional_embedding, one multi-head attention query
//              (the mean token) over all tokens, c_proj → (B, E)
//
// The output of attnpool *is* the image embedding (there is no separate visual projection).
// Everything is composed from nn:: modules and ops::, so it runs on every backend. BatchNorm is the
// inference form (running statistics), as in model.eval().
#include "models/clip/resnet.h"

#include <string>
#include <vector>

namespace vislang::clip {

namespace {

// nn.AvgPool2d(k): kernel k, stride k, no padding (ceil_mode off, count_include_pad on).
Tensor avg_pool(const Tensor& x, int64_t k) {  // (B, C, H, W) -> (B, C, H/k, W/k)
  if (k == 1) return x;
  ops::Pool2dOptions o;
  o.kernel_h = o.kernel_w = k;
  o.stride_h = o.stride_w = k;
  return ops::avg_pool2d(x, o);
}

// Conv (no bias) followed by inference BatchNorm, as named in the state dict: `<conv>.weight`,
// `<bn>.{weight, bias, running_mean, running_var[, num_batches_tracked]}`.
struct ConvBn {
  nn::Conv2d conv;
  nn::BatchNorm2d bn;
  void load(const WeightScope& conv_s, const WeightScope& bn_s, int64_t in, int64_t out, int64_t k, int64_t stride,
            DType dt) {
    conv.load(conv_s, in, out, k, stride, k / 2, /*has_bias=*/false, dt);
    bn.load(bn_s, out, dt);
  }
  Tensor forward(const Tensor& x) const { return bn.forward(conv.forward(x)); }  // (B, in, H, W) -> (B, out, H', W')
};

// Bottleneck: 1x1 → 3x3 → avgpool(stride) → 1x1 (×4), plus an identity or a downsample branch
// (AvgPool(stride) as `downsample.-1` (no params), 1x1 conv `downsample.0`, BatchNorm `downsample.1`).
struct Bottleneck {
  static constexpr int64_t kExpansion = 4;
  ConvBn c1, c2, c3;  // conv1/bn1 (planes, in, 1, 1), conv2/bn2 (planes, planes, 3, 3), conv3/bn3 (4 planes, planes, 1, 1)
  bool has_downsample = false;
  ConvBn down;        // downsample.0 (4 planes, in, 1, 1) / downsample.1
  int64_t stride = 1;

  void load(const WeightScope& s, int64_t inplanes, int64_t planes, int64_t stride_, DType dt) {
    stride = stride_;
    c1.load(s.sub("conv1"), s.sub("bn1"), inplanes, planes, 1, 1, dt);
    c2.load(s.sub("conv2"), s.sub("bn2"), planes, planes, 3, 1, dt);
    c3.load(s.sub("conv3"), s.sub("bn3"), planes, planes * kExpansion, 1, 1, dt);
    has_downsample = stride > 1 || inplanes != planes * kExpansion;
    if (has_downsample) {
      WeightScope d = s.sub("downsample");
      down.load(d.sub("0"), d.sub("1"), inplanes, planes * kExpansion, 1, 1, dt);
    }
  }

  Tensor forward(const Tensor& x) const {  // (B, in, H, W) -> (B, 4 planes, H/stride, W/stride)
    Tensor out = ops::relu(c1.forward(x));      // (B, planes, H, W)
    out = ops::relu(c2.forward(out));           // (B, planes, H, W)
    out = avg_pool(out, stride);                // (B, planes, H/s, W/s)
    out = c3.forward(out);                      // (B, 4 planes, H/s, W/s)
    Tensor identity = has_downsample ? down.forward(avg_pool(x, stride)) : x;
    return ops::relu(ops::add(out, identity));  // (B, 4 planes, H/s, W/s)
  }
};

// AttentionPool2d: q/k/v/c_proj are separate Linears with biases (not nn::MultiHeadAttention,
// whose output projection is named out_proj).
struct AttentionPool2d {
  Tensor positional_embedding;  // (HW + 1, C)
  nn::Linear q_proj, k_proj, v_proj;  // (C, C), (C)
  nn::Linear c_proj;            // (E, C), (E)
  int64_t heads = 1;

  void load(const WeightScope& s, int64_t spatial, int64_t embed_dim, int64_t heads_, int64_t output_dim, DType dt) {
    VL_CHECK(heads_ > 0 && embed_dim % heads_ == 0, "attention pool ", s.path(""), ": width ", embed_dim,
             " is not divisible by ", heads_, " heads");
    heads = heads_;
    positional_embedding = s.get("positional_embedding", {spatial * spatial + 1, embed_dim}, dt);
    q_proj.load(s.sub("q_proj"), embed_dim, embed_dim, true, dt);
    k_proj.load(s.sub("k_proj"), embed_dim, embed_dim, true, dt);
    v_proj.load(s.sub("v_proj"), embed_dim, embed_dim, true, dt);
    c_proj.load(s.sub("c_proj"), embed_dim, output_dim, true, dt);
  }

  Tensor forward(const Tensor& x) const {  // (B, C, H, W) -> (B, E)
    int64_t B = x.size(0);
    Tensor t = x.flatten(2).transpose(1, 2);                 // (B, HW, C) view
    Tensor mean = ops::mean(x.flatten(2), 2).unsqueeze(1);   // (B, 1, C)
    t = ops::add(ops::concat({mean, t}, 1), positional_embedding);  // (B, HW + 1, C)
    // Only the mean token's output is used (OpenAI returns x[0]), so it is the only query.
    Tensor q = nn::split_heads(q_proj.forward(t.narrow(1, 0, 1)), heads);  // (B, H, 1, D)
    Tensor k = nn::split_heads(k_proj.forward(t), heads);                   // (B, H, HW + 1, D)
    Tensor v = nn::split_heads(v_proj.forward(t), heads);                   // (B, H, HW + 1, D)
    Tensor o = ops::scaled_dot_product_attention(q, k, v);                  // (B, H, 1, D), scale 1/sqrt(D)
    Tensor y = c_proj.forward(nn::merge_heads(o));                          // (B, 1, E)
    return y.reshape({B, y.size(2)});                                       // (B, E)
  }
};

}  // namespace

struct ModifiedResNet::Impl {
  ConvBn stem1, stem2, stem3;  // conv1/bn1 (w/2, 3, 3, 3) s2, conv2/bn2 (w/2, w/2, 3, 3), conv3/bn3 (w, w/2, 3, 3)
  std::vector<Bottleneck> layers[4];
  AttentionPool2d attnpool;
  int64_t image_size = 224;

  Tensor forward(const Tensor& pixels) const {  // (B, 3, S, S) -> (B, E)
    Tensor x = ops::relu(stem1.forward(pixels));  // (B, w/2, S/2, S/2)
    x = ops::relu(stem2.forward(x));              // (B, w/2, S/2, S/2)
    x = ops::relu(stem3.forward(x));              // (B, w, S/2, S/2)
    x = avg_pool(x, 2);                           // (B, w, S/4, S/4)
    for (const auto& layer : layers)
      for (const Bottleneck& b : layer) x = b.forward(x);  // ... → (B, 32w, S/32, S/32)
    return attnpool.forward(x);                            // (B, E)
  }
};

ModifiedResNet::ModifiedResNet(const WeightScope& visual, const ClipConfig& c, DType dt)
    : impl_(std::make_shared<Impl>()) {
  const VisionConfig& v = c.vision;
  VL_CHECK(v.type == "resnet", "ModifiedResNet: vision.type is '", v.type, "', expected 'resnet'");
  VL_CHECK(v.resnet_layers.size() == 4, "ModifiedResNet: vision.resnet_layers must have 4 entries, got ",
           v.resnet_layers.size());
  VL_CHECK(v.width % 2 == 0, "ModifiedResNet: vision.width (stem width) must be even, got ", v.width);
  VL_CHECK(v.image_size % 32 == 0, "ModifiedResNet: vision.image_size must be a multiple of 32, got ", v.image_size);
  Impl& m = *impl_;
  m.image_size = v.image_size;
  const int64_t w = v.width;
  m.stem1.load(visual.sub("conv1"), visual.sub("bn1"), 3, w / 2, 3, 2, dt);
  m.stem2.load(visual.sub("conv2"), visual.sub("bn2"), w / 2, w / 2, 3, 1, dt);
  m.stem3.load(visual.sub("conv3"), visual.sub("bn3"), w / 2, w, 3, 1, dt);
  int64_t inplanes = w;
  for (int i = 0; i < 4; ++i) {
    int64_t planes = w << i, n = v.resnet_layers[i];
    VL_CHECK(n >= 1, "ModifiedResNet: vision.resnet_layers[", i, "] must be >= 1, got ", n);
    WeightScope ls = visual.sub("layer" + std::to_string(i + 1));
    m.layers[i].resize(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      m.layers[i][j].load(ls.sub(std::to_string(j)), inplanes, planes, (i > 0 && j == 0) ? 2 : 1, dt);
      inplanes = planes * Bottleneck::kExpansion;
    }
  }
  // embed_dim = 32 w (the ResNet feature width); spatial = S / 32.
  m.attnpool.load(visual.sub("attnpool"), v.image_size / 32, w * 32, v.heads, c.projection_dim, dt);
}

Tensor ModifiedResNet::encode(const Tensor& pixels) const {
  const Impl& m = *impl_;
  VL_CHECK(pixels.dim() == 4 && pixels.size(1) == 3, "resnet vision tower: pixels must be (B, 3, H, W), got ",
           pixels.describe());
  VL_CHECK(pixels.size(2) == m.image_size && pixels.size(3) == m.image_size, "resnet vision tower: expected ",
           m.image_size, "x", m.image_size, " images, got ", pixels.describe());
  return m.forward(pixels);
}

}  // namespace vislang::clip
