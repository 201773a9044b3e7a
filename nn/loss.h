// nn/loss.h — the contrastive (InfoNCE) losses that train CLIP-style models.
//
// Where it sits: image → vision tower → image_emb (B, E) ┐
//                text  → text tower   → text_emb  (B, E) ┴→ clip_contrastive_loss → backward → AdamW
//
// A batch holds B matching (image, caption) pairs. Row i of the logit matrix scores image i against
// every caption of the batch; the "right answer" for image i is caption i (the diagonal), and the
// other B − 1 captions are its negatives. The loss is the cross-entropy of that B-way classification,
// taken both ways (image → text over rows, text → image over columns) and averaged, exactly as in
// CLIP (Radford et al. 2021, Figure 3) and OpenCLIP's ClipLoss (open_clip/loss.py).
//
// Everything is composed from ops:: (l2_normalize, matmul, exp, mul, cross_entropy), so autograd
// records it and backward() gives gradients wrt both embeddings and the learnable logit scale.
// nn/loss.cpp is meant to be read: the formulas are written next to the code.
#pragma once
#include "core/tensor.h"

namespace vislang::nn {

// Optional extras filled by the losses (host values, computed without recording a graph).
struct ContrastiveStats {
  double loss = 0;         // the returned loss, as a number
  double acc_i2t = 0;      // fraction of images whose highest-scoring caption in the batch is their own
  double acc_t2i = 0;      // fraction of captions whose highest-scoring image in the batch is their own
  double scale = 0;        // the multiplier applied to the cosine similarities: exp(logit_scale) or 1/T
  int64_t batch = 0;       // B
};

// CLIP's symmetric loss with a learnable temperature.
//   image_emb (B, E), text_emb (B, E): unnormalized tower outputs (row i of each is a matching pair)
//   logit_scale: 0-d tensor, the log of the inverse temperature (CLIP starts it at ln(1/0.07))
//   returns a 0-d tensor:
//     I = image_emb / ‖image_emb‖,  T = text_emb / ‖text_emb‖          (row-wise, eps 1e-12)
//     logits = exp(logit_scale) · I Tᵀ                                   (B, B)
//     loss = ( CE(logits, [0..B)) + CE(logitsᵀ, [0..B)) ) / 2           (CE = mean cross-entropy)
// Errors name the function and the tensors (shape mismatch, B = 0, logit_scale not one element).
Tensor clip_contrastive_loss(const Tensor& image_emb, const Tensor& text_emb, const Tensor& logit_scale,
                             ContrastiveStats* stats = nullptr);

// The same loss with a fixed temperature T (SimCLR/InfoNCE style): logits = I Tᵀ / temperature.
Tensor contrastive_loss(const Tensor& image_emb, const Tensor& text_emb, double temperature,
                        ContrastiveStats* stats = nullptr);

// A fresh learnable logit scale: a 0-d tensor holding ln(1/0.07) ≈ 2.6593 (CLIP's initial temperature
// 0.07), with requires_grad set (as torch's nn.Parameter(torch.ones([]) * np.log(1 / 0.07))).
Tensor init_logit_scale(DType dtype = DType::F32, Device device = Device::cpu());

// CLIP clamps the scale after every optimizer step so that exp(logit_scale) ≤ 100 (the logits can
// not grow without bound): logit_scale ← clamp(logit_scale, 0, ln 100). In place (the storage shared
// with the optimizer and the model is written), under autograd::NoGradGuard.
void clamp_logit_scale_(Tensor& logit_scale, double max_log_scale = 4.605170185988091 /* ln 100 */);

}  // namespace vislang::nn
