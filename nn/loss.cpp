// nn/loss.cpp — CLIP's contrastive loss, written out step by step (see nn/loss.h for the picture).
//
// Reference: CLIP (Radford et al. 2021), Figure 3 pseudo-code:
//     I_e = l2_normalize(I_f, axis=1);  T_e = l2_normalize(T_f, axis=1)
//     logits = np.dot(I_e, T_e.T) * np.exp(t)
//     labels = np.arange(n)
//     loss = (cross_entropy(logits, labels, axis=0) + cross_entropy(logits, labels, axis=1)) / 2
// and OpenCLIP's ClipLoss (open_clip/loss.py), which is the same with logit_scale = exp(t).
#include "nn/loss.h"

#include <cmath>

#include "core/autograd.h"
#include "kernels/ops.h"

namespace vislang::nn {

namespace {

void check_pair(const Tensor& img, const Tensor& txt, const char* fn) {
  VL_CHECK(img.defined() && txt.defined(), fn, ": undefined embedding");
  VL_CHECK(img.dim() == 2 && txt.dim() == 2, fn, ": embeddings must be (B, E), got image_emb ", img.describe(),
           " and text_emb ", txt.describe());
  VL_CHECK(img.shape() == txt.shape(), fn, ": image_emb ", img.describe(), " and text_emb ", txt.describe(),
           " must have the same (B, E): row i of each is one matching pair");
  VL_CHECK(img.size(0) > 0, fn, ": empty batch (B = 0)");
}

// Fraction of rows of `logits` (N, N) whose largest entry is on the diagonal (ties: the first index).
double top1_on_diagonal(const Tensor& logits) {
  std::vector<int64_t> best = ops::argmax(logits, 1).to_vector<int64_t>();
  int64_t hits = 0;
  for (size_t i = 0; i < best.size(); ++i) hits += best[i] == static_cast<int64_t>(i);
  return best.empty() ? 0.0 : static_cast<double>(hits) / static_cast<double>(best.size());
}

// The symmetric cross-entropy shared by both losses. logits (B, B): row i = image i vs every caption.
//   loss_i2t = CE(logits,  labels)   each image must pick its own caption among the B captions
//   loss_t2i = CE(logitsᵀ, labels)   each caption must pick its own image among the B images
//   loss     = (loss_i2t + loss_t2i) / 2
// with labels = [0, 1, ..., B−1] (the diagonal) and CE(z, y) = mean_i ( −z[i, y_i] + log Σ_j exp z[i, j] ).
Tensor symmetric_cross_entropy(const Tensor& logits, double scale, ContrastiveStats* stats) {
  const int64_t B = logits.size(0);
  Tensor labels = Tensor::arange(0, static_cast<double>(B), 1, DType::I64, logits.device());
  Tensor loss_i2t = ops::cross_entropy(logits, labels);
  Tensor loss_t2i = ops::cross_entropy(logits.t(), labels);  // logitsᵀ is a view: column j = caption j
  Tensor loss = ops::div(ops::add(loss_i2t, loss_t2i), 2.0);
  if (stats) {
    autograd::NoGradGuard no_grad;
    Tensor z = logits.detach();
    stats->loss = loss.item();
    stats->acc_i2t = top1_on_diagonal(z);
    stats->acc_t2i = top1_on_diagonal(z.t());
    stats->scale = scale;
    stats->batch = B;
  }
  return loss;
}

}  // namespace

Tensor clip_contrastive_loss(const Tensor& image_emb, const Tensor& text_emb, const Tensor& logit_scale,
                             ContrastiveStats* stats) {
  const char* fn = "clip_contrastive_loss";
  check_pair(image_emb, text_emb, fn);
  VL_CHECK(logit_scale.defined() && logit_scale.numel() == 1, fn,
           ": logit_scale must be a one-element (0-d) tensor, got ",
           logit_scale.defined() ? logit_scale.describe() : std::string("undefined"));
  VL_CHECK(logit_scale.dtype() == image_emb.dtype() && logit_scale.device() == image_emb.device(), fn,
           ": logit_scale ", logit_scale.describe(), " must have the embeddings' dtype and device (",
           image_emb.describe(), ")");
  // 1. Project both sides onto the unit sphere: I Tᵀ is then the matrix of cosine similarities.
  Tensor I = ops::l2_normalize(image_emb, -1);  // (B, E), ‖I_i‖ = 1
  Tensor T = ops::l2_normalize(text_emb, -1);   // (B, E), ‖T_j‖ = 1
  // 2. Sharpen them by the learned inverse temperature s = exp(logit_scale) (kept positive by the exp;
  //    CLIP clamps it to ≤ 100 after each step, see clamp_logit_scale_).
  Tensor s = ops::exp(logit_scale.reshape({}));              // 0-d
  Tensor logits = ops::mul(ops::matmul(I, T, false, true), s);  // (B, B): s · cos(I_i, T_j)
  // 3. Classify the pairs both ways and average.
  return symmetric_cross_entropy(logits, stats ? s.item() : 0.0, stats);
}

Tensor contrastive_loss(const Tensor& image_emb, const Tensor& text_emb, double temperature,
                        ContrastiveStats* stats) {
  const char* fn = "contrastive_loss";
  check_pair(image_emb, text_emb, fn);
  VL_CHECK(temperature > 0 && std::isfinite(temperature), fn, ": temperature must be positive, got ",
           temperature);
  Tensor I = ops::l2_normalize(image_emb, -1);                               // (B, E)
  Tensor T = ops::l2_normalize(text_emb, -1);                                // (B, E)
  Tensor logits = ops::div(ops::matmul(I, T, false, true), temperature);     // (B, B): cos / T
  return symmetric_cross_entropy(logits, 1.0 / temperature, stats);
}

Tensor init_logit_scale(DType dtype, Device device) {
  // ln(1 / 0.07): CLIP's initial temperature τ = 0.07, i.e. logits start as cosines × 14.29.
  Tensor t = Tensor::full({}, std::log(1.0 / 0.07), dtype, device);
  t.requires_grad_();
  return t;
}

void clamp_logit_scale_(Tensor& logit_scale, double max_log_scale) {
  VL_CHECK(logit_scale.defined(), "clamp_logit_scale_: undefined tensor");
  autograd::NoGradGuard no_grad;
  // logit_scale ← clamp(logit_scale, 0, ln 100): written into the existing storage, so the model and
  // the optimizer (which hold the same handle) see the clamped value.
  logit_scale.copy_(ops::clamp(logit_scale.detach(), 0.0, max_log_scale));
}

}  // namespace vislang::nn
