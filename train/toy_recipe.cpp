// train/toy_recipe.cpp — see train/toy_recipe.h. Read top to bottom: vocabulary, model, data,
// the training loop, evaluation, outputs.
#include "train/toy_recipe.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "datasets/toy_world.h"
#include "image/plot.h"
#include "image/png_write.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "train/bpe_trainer.h"
#include "train/checkpoint.h"
#include "train/clip_trainer.h"

namespace vislang::train {

// ---- 1. vocabulary: a BPE learned from every caption template and prompt of the world -------------
static std::vector<std::string> toy_corpus(const toy::ToyWorld& world) {
  std::vector<std::string> texts;
  for (toy::Split sp : {toy::Split::TRAIN, toy::Split::TEST, toy::Split::HELDOUT_COMBOS})
    for (uint64_t i = 0; i < 600; ++i)
      for (const std::string& c : toy::all_captions(world.sample(i, sp))) texts.push_back(c);
  for (int l = 0; l < toy::kNumLabels; ++l)
    for (int t = 0; t < toy::num_prompt_templates(); ++t) texts.push_back(toy::prompt(l, t));
  return texts;
}

clip::ClipConfig toy_clip_config(const ToyRecipeOptions& o, int64_t vocab_size, int64_t context_length) {
  clip::ClipConfig c;
  c.name = "vislang-toy-clip";
  c.vision.type = "vit";
  c.vision.image_size = o.image_size;
  c.vision.patch_size = o.patch_size;
  c.vision.width = o.width;
  c.vision.layers = o.layers;
  c.vision.heads = o.heads;
  c.vision.mlp_dim = 4 * o.width;
  c.text.vocab_size = vocab_size;
  c.text.context_length = context_length;
  c.text.width = o.width;
  c.text.layers = o.layers;
  c.text.heads = o.heads;
  c.text.mlp_dim = 4 * o.width;
  c.text.eos_token_id = vocab_size - 1;  // <|endoftext|> is the last token of the learned vocabulary
  c.text.pool_argmax = false;            // what from_hf infers for eos_token_id != 2
  c.projection_dim = o.width;
  c.preprocess.size = o.image_size;
  return c;
}

// ---- 3. data -------------------------------------------------------------------------------------
// Batch `step` is a pure function of the step, so a resumed run sees the same data. Plain: samples
// [step·B, (step+1)·B) of TRAIN. With hard negatives: samples [step·B/2, (step+1)·B/2), each
// followed by its counterfactual with another (seen) shape, so every batch holds B/2 pairs of scenes
// that only the shape tells apart.
static Tensor train_batch(const toy::ToyWorld& world, int64_t step, int64_t B, bool hard,
                          std::vector<toy::ToySample>& samples) {
  if (!hard) {
    std::vector<uint64_t> idx(static_cast<size_t>(B));
    for (int64_t i = 0; i < B; ++i) idx[i] = static_cast<uint64_t>(step * B + i);
    return world.batch(idx, toy::Split::TRAIN, &samples);
  }
  samples.assign(static_cast<size_t>(B), toy::ToySample());
  const int64_t half = B / 2;
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < B - half; ++i) {
    uint64_t index = static_cast<uint64_t>(step * (B - half) + i);
    samples[i] = world.sample(index, toy::Split::TRAIN);
    if (i >= half) continue;
    const toy::ToyObject& m = samples[i].objects[0];
    int shape = (m.shape + 1 + static_cast<int>(samples[i].key % (toy::kNumShapes - 1))) % toy::kNumShapes;
    while (shape == m.shape || world.is_held_out(m.color, shape)) shape = (shape + 1) % toy::kNumShapes;
    samples[B - half + i] = world.sample_with_shape(index, toy::Split::TRAIN, shape);
  }
  return toy::to_tensor(samples);
}

// ---- 5. evaluation --------------------------------------------------------------------------------
namespace {
struct EvalSet {
  Tensor pixels;
  std::vector<int> labels;
  std::vector<std::string> captions;
};
// `n` images of `split`; one object each when `single` (zero-shot labels are unambiguous).
EvalSet eval_set(const toy::ToyWorldConfig& base, toy::Split split, int64_t n, bool single) {
  toy::ToyWorldConfig c = base;
  if (single) c.max_objects = 1;
  toy::ToyWorld w(c);
  std::vector<uint64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = static_cast<uint64_t>(i);
  std::vector<toy::ToySample> samples;
  EvalSet e;
  e.pixels = w.batch(idx, split, &samples);
  for (const auto& s : samples) {
    e.labels.push_back(toy::label_of(s));
    e.captions.push_back(s.caption);
  }
  return e;
}
std::vector<std::vector<std::string>> label_prompts() {
  std::vector<std::vector<std::string>> p(toy::kNumLabels);
  for (int l = 0; l < toy::kNumLabels; ++l)
    for (int t = 0; t < toy::num_prompt_templates(); ++t) p[l].push_back(toy::prompt(l, t));
  return p;
}
}  // namespace

static ToyResult evaluate(const clip::ClipModel& m, const ClipTokenizer& tok, const toy::ToyWorldConfig& wc,
                          int64_t n) {
  autograd::NoGradGuard no_grad;
  ToyResult r;
  Tensor classes = class_embeddings(m, tok, label_prompts());
  EvalSet seen = eval_set(wc, toy::Split::TEST, n, true);
  r.zero_shot_seen = zero_shot_top1(embed_images(m, seen.pixels), classes, seen.labels);
  EvalSet held = eval_set(wc, toy::Split::HELDOUT_COMBOS, n, true);
  r.zero_shot_heldout = zero_shot_top1(embed_images(m, held.pixels), classes, held.labels);
  EvalSet pairs = eval_set(wc, toy::Split::TEST, n, false);
  Recall rc = retrieval_recall(embed_images(m, pairs.pixels), embed_texts(m, tok, pairs.captions));
  r.i2t_r1 = rc.i2t_r1;
  r.i2t_r5 = rc.i2t_r5;
  r.t2i_r1 = rc.t2i_r1;
  r.t2i_r5 = rc.t2i_r5;
  return r;
}

static nlohmann::json result_json(const ToyResult& r) {
  return {{"zero_shot_top1_seen_combinations", r.zero_shot_seen},
          {"zero_shot_top1_heldout_combinations", r.zero_shot_heldout},
          {"image_to_text_recall@1", r.i2t_r1}, {"image_to_text_recall@5", r.i2t_r5},
          {"text_to_image_recall@1", r.t2i_r1}, {"text_to_image_recall@5", r.t2i_r5},
          {"final_loss", r.final_loss},         {"train_seconds", r.train_seconds},
          {"parameters", r.params}};
}

ToyResult evaluate_toy_model(const std::string& model_dir, int64_t images, uint64_t seed) {
  clip::ClipModel m = clip::ClipModel::load(model_dir);
  ClipTokenizer tok = ClipTokenizer::from_hf(model_dir + "/vocab.json", model_dir + "/merges.txt");
  toy::ToyWorldConfig wc;
  wc.seed = seed;
  wc.image_size = static_cast<int>(m.config().vision.image_size);
  return evaluate(m, tok, wc, images);
}

void print_toy_examples(const std::string& model_dir, uint64_t seed, std::ostream& os) {
  autograd::NoGradGuard no_grad;
  clip::ClipModel m = clip::ClipModel::load(model_dir);
  ClipTokenizer tok = ClipTokenizer::from_hf(model_dir + "/vocab.json", model_dir + "/merges.txt");
  toy::ToyWorldConfig wc;
  wc.seed = seed;
  wc.image_size = static_cast<int>(m.config().vision.image_size);
  Tensor classes = class_embeddings(m, tok, label_prompts());
  EvalSet ex = eval_set(wc, toy::Split::TEST, 200, true);
  Tensor img = embed_images(m, ex.pixels);
  std::vector<int64_t> top = ops::topk(ops::matmul(img, classes, false, true), 3, 1).indices.to_vector<int64_t>();
  os << "zero-shot on generated test images (caption -> top-3 labels):\n";
  for (int i = 0; i < 5; ++i)
    os << "  \"" << ex.captions[i] << "\" -> " << toy::label_name(static_cast<int>(top[i * 3])) << ", "
       << toy::label_name(static_cast<int>(top[i * 3 + 1])) << ", " << toy::label_name(static_cast<int>(top[i * 3 + 2]))
       << "\n";
  os << "text -> image retrieval over those 200 images (query -> captions of the top-3 images):\n";
  std::vector<std::string> queries{"a photo of a red circle.", "a large blue star", "a green triangle"};
  Tensor q = embed_texts(m, tok, queries);
  std::vector<int64_t> best = ops::topk(ops::matmul(q, img, false, true), 3, 1).indices.to_vector<int64_t>();
  for (size_t i = 0; i < queries.size(); ++i)
    os << "  \"" << queries[i] << "\" -> \"" << ex.captions[best[i * 3]] << "\", \"" << ex.captions[best[i * 3 + 1]]
       << "\", \"" << ex.captions[best[i * 3 + 2]] << "\"\n";
}

// ---- the recipe -----------------------------------------------------------------------------------
ToyResult run_toy_recipe(const ToyRecipeOptions& o) {
  VL_CHECK(o.steps > 0 && o.batch >= 2, "train: --steps must be > 0 and --batch >= 2 (the contrastive loss needs "
           "negatives), got steps ", o.steps, ", batch ", o.batch);
  VL_CHECK(o.image_size % o.patch_size == 0, "train: image size ", o.image_size, " is not a multiple of the patch size ",
           o.patch_size);
  DType out_dtype = o.saved_dtype();
  const std::string model_dir = o.out + "/model";
  make_dirs(model_dir);

  toy::ToyWorldConfig wc;
  wc.seed = o.seed;
  wc.image_size = static_cast<int>(o.image_size);
  wc.two_object_prob = o.two_object_prob;
  toy::ToyWorld world(wc);

  // 1. vocabulary
  BpeVocab vocab = learn_bpe(toy_corpus(world));
  vocab.write(model_dir);
  ClipTokenizer tok = ClipTokenizer::from_hf(model_dir + "/vocab.json", model_dir + "/merges.txt");
  int64_t ctx = 0;
  for (const std::string& t : toy_corpus(world)) ctx = std::max<int64_t>(ctx, static_cast<int64_t>(tok.encode(t).size()) + 2);
  ctx = (ctx + 7) / 8 * 8;

  // 2. model and optimiser
  clip::ClipConfig cfg = toy_clip_config(o, static_cast<int64_t>(vocab.tokens.size()), ctx);
  TrainableClip m = init_clip(cfg, o.seed);
  optim::AdamW opt(m.trainable(), o.adamw());
  const optim::CosineSchedule sched = o.schedule();
  int64_t start = 0;
  if (!o.resume.empty()) {
    CheckpointState st = load_checkpoint(o.resume, m.params, &opt);
    start = st.step;
    VL_CHECK(start <= o.steps, "train: checkpoint '", o.resume, "' is at step ", start, ", beyond --steps ", o.steps);
    std::cerr << "resuming from " << o.resume << " at step " << start << "\n";
  }
  std::cerr << "toy CLIP: " << m.num_params() << " parameters (vision " << cfg.vision.layers << "x"
            << cfg.vision.width << ", patch " << cfg.vision.patch_size << ", " << cfg.vision.image_size << "px; text "
            << cfg.text.layers << "x" << cfg.text.width << ", vocab " << cfg.text.vocab_size << ", context " << ctx
            << "), " << o.steps << " steps of " << o.batch << " pairs\n";

  // 3. the loop
  std::ofstream csv(o.out + "/metrics.csv", start > 0 ? std::ios::app : std::ios::trunc);
  VL_CHECK(csv.good(), "train: cannot write '", o.out, "/metrics.csv'");
  if (start == 0) csv << "step,loss,lr,acc_i2t,acc_t2i,logit_scale,grad_norm,samples_per_s,elapsed_s,zero_shot_top1\n";
  std::vector<double> xs, losses, accs, eval_x, eval_acc;
  EvalSet quick = eval_set(wc, toy::Split::TEST, 256, true);
  auto quick_eval = [&]() {
    autograd::NoGradGuard ng;
    Tensor classes = class_embeddings(m.model, tok, label_prompts());
    return zero_shot_top1(embed_images(m.model, quick.pixels), classes, quick.labels);
  };
  const int64_t end = o.stop_after > 0 ? std::min(o.stop_after, o.steps) : o.steps;
  TrainProgress progress(end, start, o.batch, o.progress);
  double loss_value = 0;
  for (int64_t step = start; step < end; ++step) {
    std::vector<toy::ToySample> samples;
    Tensor pixels = train_batch(world, step, o.batch, o.hard_negatives, samples);  // (B, 3, S, S)
    std::vector<std::string> caps;
    for (const auto& s : samples) caps.push_back(s.caption);
    Tensor ids = tokenize(tok, caps, ctx);                            // (B, T)

    opt.set_lr(sched.lr_at(step));
    StepStats st = contrastive_step(m, opt, pixels, ids, o.grad_clip);
    loss_value = st.loss;

    double zs = NAN;
    std::string note;
    if (o.eval_every > 0 && ((step + 1) % o.eval_every == 0 || step + 1 == end)) {
      zs = quick_eval();
      eval_x.push_back(static_cast<double>(step + 1));
      eval_acc.push_back(zs);
      note = "  zero-shot " + std::to_string(zs);
    }
    progress.update(step + 1, st, opt.lr(), note);
    xs.push_back(static_cast<double>(step + 1));
    losses.push_back(st.loss);
    accs.push_back(0.5 * (st.acc_i2t + st.acc_t2i));
    csv << step + 1 << "," << st.loss << "," << opt.lr() << "," << st.acc_i2t << "," << st.acc_t2i << ","
        << m.logit_scale.item() << "," << st.grad_norm << "," << progress.samples_per_second() << ","
        << progress.elapsed() << ",";
    if (!std::isnan(zs)) csv << zs;
    csv << "\n";
  }
  progress.finish();
  csv.close();
  double train_s = progress.elapsed();

  // 4. outputs: checkpoint, model folder, curves
  save_checkpoint(o.out + "/checkpoint.safetensors", m.params, &opt,
                  CheckpointState{end, {}, {{"recipe", "toy"}, {"config", cfg.to_json().dump()}}});
  save_model_folder(model_dir, m, out_dtype);
  std::vector<Series> loss_series{{"loss", xs, losses}};
  std::vector<Series> acc_series{{"in-batch accuracy", xs, accs}, {"zero-shot top-1 (256 test images)", eval_x, eval_acc}};
  PlotOptions po;
  po.x_label = "step";
  plot_lines(o.out + "/loss.png", "toy CLIP: contrastive loss", loss_series, po);
  plot_lines(o.out + "/accuracy.png", "toy CLIP: accuracy", acc_series, po);

  // 5. evaluation of the saved model, exactly as a user would load it
  ToyResult r = evaluate_toy_model(model_dir, o.eval_images, o.seed);
  r.final_loss = loss_value;
  r.train_seconds = train_s;
  r.params = m.num_params();
  std::string ej = result_json(r).dump(2) + "\n";
  write_file_atomic(o.out + "/eval.json", ej.data(), ej.size());
  return r;
}

}  // namespace vislang::train
