// cli/train_command.cpp — `vislang train`: trains a CLIP from scratch on the toy world
// (--recipe toy, train/toy_recipe.h), the toy VQA fusion models (--recipe toy-vqa,
// train/vqa_recipe.h) or a tiny Q-Former (--recipe toy-qformer, train/qformer_recipe.h), or
// fine-tunes a pretrained CLIP on image–caption pairs (--init MODEL --data CSV|FOLDER,
// train/finetune.h). The flags every run shares fill a train::TrainingOptions
// (train/training_options.h) in one place, read_training_options; their help lists each recipe's
// own defaults, read from the recipes' option structs.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <vector>

#include "cli/clip_common.h"
#include "cli/commands.h"
#include "train/finetune.h"
#include "train/qformer_recipe.h"
#include "train/toy_recipe.h"
#include "train/vqa_recipe.h"

namespace vislang::cli {
namespace {

// Each recipe's options, default-constructed: the shared part holds that recipe's defaults.
struct RecipeDefaults {
  const char* name;
  train::TrainingOptions o;
};
const std::vector<RecipeDefaults>& recipe_defaults() {
  static const std::vector<RecipeDefaults> all{{"toy", train::ToyRecipeOptions()},
                                               {"toy-vqa", train::VqaRecipeOptions()},
                                               {"toy-qformer", train::QFormerRecipeOptions()},
                                               {"fine-tune", train::FinetuneOptions()}};
  return all;
}

// A default as the help shows it: 1e-3 rather than 0.001, 1.0 rather than 1.
std::string number_text(double v) {
  char buf[40];
  if (v != 0 && std::fabs(v) < 0.01) {
    for (int digits = 0; digits < 17; ++digits) {  // the shortest mantissa that reads back exactly
      std::snprintf(buf, sizeof buf, "%.*e", digits, v);
      if (std::stod(buf) == v) break;
    }
    std::string s = buf;
    size_t e = s.find('e');
    return s.substr(0, e) + "e" + std::to_string(std::stoi(s.substr(e + 1)));  // e-03 → e-3
  }
  std::snprintf(buf, sizeof buf, "%g", v);
  std::string s = buf;
  return s.find_first_of(".e") == std::string::npos ? s + ".0" : s;
}
std::string number_text(int64_t v) { return std::to_string(v); }
std::string number_text(uint64_t v) { return std::to_string(v); }
std::string number_text(const std::string& v) { return v; }

// "(default X)" when every recipe has the same default, else "(toy: A, toy-vqa: B, ...)".
template <typename T>
std::string defaults_text(T train::TrainingOptions::*field) {
  std::vector<std::string> values;
  for (const RecipeDefaults& r : recipe_defaults()) values.push_back(number_text(r.o.*field));
  bool same = true;
  for (const std::string& v : values) same = same && v == values.front();
  if (same) return "(default " + values.front() + ")";
  std::string s = "(";
  for (size_t i = 0; i < values.size(); ++i)
    s += std::string(i ? ", " : "") + recipe_defaults()[i].name + ": " + values[i];
  return s + ")";
}

ArgParser train_parser() {
  using O = train::TrainingOptions;
  ArgParser p("train", "(--recipe toy | --init MODEL --data CSV|FOLDER) [options]",
              "Trains a CLIP with the contrastive (InfoNCE) loss, AdamW, a cosine schedule with warm-up and "
              "gradient clipping, showing progress and writing metrics.csv, loss/accuracy curves (PNG), a "
              "resumable checkpoint and a model folder every vislang command loads.");
  p.value("--recipe", "NAME", "train from scratch with a built-in recipe: toy (the toy world of shapes), toy-vqa, "
             "toy-qformer (a tiny BLIP-2 Q-Former on the frozen toy CLIP)", "what")
      .value("--init", "MODEL", "fine-tune this CLIP (HF folder or converted .safetensors)", "what")
      .value("--data", "CSV|FOLDER", "image-caption pairs for --init: a CSV (path,caption) or a folder", "what")
      .value("--steps", "N", "optimizer steps " + defaults_text(&O::steps), "training")
      .value("--batch", "B", "pairs (toy-vqa: questions) per step " + defaults_text(&O::batch), "training")
      .value("--lr", "LR", "peak learning rate " + defaults_text(&O::lr), "training")
      .value("--warmup", "N", "linear warm-up steps " + defaults_text(&O::warmup), "training")
      .value("--weight-decay", "WD", "AdamW weight decay " + defaults_text(&O::weight_decay), "training")
      .value("--grad-clip", "NORM", "global gradient-norm clip " + defaults_text(&O::grad_clip), "training")
      .value("--seed", "S", "data and initialisation seed " + defaults_text(&O::seed), "training")
      .flag("--lock-image", "fine-tune: freeze the image tower (LiT)", "training")
      .flag("--lock-text", "fine-tune: freeze the text tower", "training")
      .value("--resume", "CHECKPOINT", "toy: continue from OUT/checkpoint.safetensors", "training")
      .flag("--no-hard-negatives", "toy: plain batches (no same-scene, other-shape counterfactuals)", "training")
      .value("--stop-after", "N", "toy: stop (and save a resumable checkpoint) after step N of --steps", "training")
      .value("--out", "DIR", "output folder " + defaults_text(&O::out), "output")
      .value("--save-dtype", "T", "dtype of the saved model: f32, f16 or bf16 " + defaults_text(&O::save_dtype), "output")
      .value("--eval-every", "N", "toy: quick zero-shot evaluation every N steps (default 100; 0 = off)", "output")
      .value("--eval-images", "N", "toy, toy-qformer: images per final evaluation set (default 1000)", "output")
      .value("--image-size", "S", "toy: image size (default 72)", "toy model")
      .value("--patch-size", "P", "toy: ViT patch size (default 24)", "toy model")
      .value("--width", "W", "toy: width of both towers (default 128)", "toy model")
      .value("--layers", "L", "toy: layers of both towers (default 3)", "toy model")
      .value("--heads", "H", "toy: attention heads (default 4)", "toy model")
      .value("--threads", "N", "OpenMP threads (default: all cores)", "runtime")
      .value("--bpe", "PATH", "fine-tune: tokenizer when the model folder has none (see vislang embed --help)", "runtime")
      .flag("--no-progress", "no progress line", "output")
      .value("--fusion", "F", "toy-vqa: early | late | late-product | hybrid (docs/fusion.md)", "toy model");
  p.epilog(
      "examples:\n"
      "  vislang train --recipe toy --out runs/toy                  # ~5 minutes on 2 cores\n"
      "  vislang zero-shot --model runs/toy/model --image x.png --labels \"red circle,blue star\"\n"
      "  vislang train --init runs/toy/model --data my_pairs.csv --lock-image --steps 50\n");
  return p;
}

double get_double(const Parsed& a, const std::string& name, double def) {
  if (!a.has(name)) return def;
  try {
    size_t used = 0;
    double v = std::stod(a.get(name), &used);
    if (used == a.get(name).size()) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(name + " expects a number, got '" + a.get(name) + "'");
}

// The flags every training run shares (train/training_options.h), over the recipe's own defaults.
// min_batch: 2 for the contrastive recipes (a pair needs another pair as its negative), 1 for toy-vqa.
void read_training_options(const Parsed& a, train::TrainingOptions& o, int64_t min_batch) {
  o.steps = a.get_int("--steps", o.steps, 1, 10000000);
  o.batch = a.get_int("--batch", o.batch, min_batch, 65536);
  o.lr = get_double(a, "--lr", o.lr);
  o.warmup = a.get_int("--warmup", o.warmup, 0, 10000000);
  o.weight_decay = get_double(a, "--weight-decay", o.weight_decay);
  o.grad_clip = get_double(a, "--grad-clip", o.grad_clip);
  o.seed = static_cast<uint64_t>(a.get_int("--seed", static_cast<long long>(o.seed), 0, (1LL << 62)));
  o.out = a.get("--out", o.out);
  o.save_dtype = a.get("--save-dtype", o.save_dtype);
  o.progress = !a.has("--no-progress");
}

int train_main(const Parsed& a) {
  Runtime rt = apply_runtime_options(a);
  (void)rt;
  bool toy = a.has("--recipe"), ft = a.has("--init");
  if (toy == ft) throw UsageError("give either --recipe toy or --init MODEL --data CSV|FOLDER");
  if (toy && a.get("--recipe") == "toy-vqa") {  // VQA fusion strategies (train/vqa_recipe.h, docs/fusion.md)
    train::VqaRecipeOptions o;
    o.fusion = a.get("--fusion", o.fusion);
    read_training_options(a, o, /*min_batch=*/1);
    train::VqaData data = train::make_vqa_data(o);
    train::VqaResult r = train::run_vqa_recipe(o, &data);
    std::cout << train::vqa_table({r}, data, false) << "outputs: " << o.out << "/metrics.csv, loss.png, accuracy.png, "
              << "model.safetensors, eval.json\n";
    return 0;
  }
  if (toy && a.get("--recipe") == "toy-qformer") {  // a tiny BLIP-2 Q-Former on the frozen toy CLIP (docs/qformer.md)
    train::QFormerRecipeOptions o;
    if (!std::ifstream(o.clip + "/config.json").good()) o.clip = executable_dir() + "/../../" + o.clip;  // the repo's
    read_training_options(a, o, /*min_batch=*/2);
    o.eval_images = a.get_int("--eval-images", o.eval_images, 10, 1000000);
    train::QFormerRecipeResult r = train::run_qformer_recipe(o);
    std::cout << "trained in " << r.train_seconds << " s (" << r.params << " parameters), ITC loss " << r.first_loss
              << " -> " << r.final_loss << ", in-batch accuracy " << r.first_batch_acc << " -> " << r.final_batch_acc
              << "\n" << train::toy_eval_table(r.clip, r.qformer) << "model: " << o.out << "/model   metrics: " << o.out
              << "/metrics.csv   curve: " << o.out << "/loss.png\n";
    return 0;
  }
  if (toy) {
    if (a.get("--recipe") != "toy") throw UsageError("unknown recipe '" + a.get("--recipe") + "' (known: toy, toy-vqa, toy-qformer)");
    if (a.has("--data") || a.has("--lock-image") || a.has("--lock-text"))
      throw UsageError("--data, --lock-image and --lock-text go with --init (fine-tuning)");
    train::ToyRecipeOptions o;
    read_training_options(a, o, /*min_batch=*/2);
    o.eval_images = a.get_int("--eval-images", o.eval_images, 10, 1000000);
    o.resume = a.get("--resume", "");
    o.stop_after = a.get_int("--stop-after", 0, 0, 10000000);
    o.hard_negatives = !a.has("--no-hard-negatives");
    o.eval_every = a.get_int("--eval-every", o.eval_every, 0, 10000000);
    o.image_size = a.get_int("--image-size", o.image_size, 16, 1024);
    o.patch_size = a.get_int("--patch-size", o.patch_size, 1, 1024);
    o.width = a.get_int("--width", o.width, 8, 4096);
    o.layers = a.get_int("--layers", o.layers, 1, 64);
    o.heads = a.get_int("--heads", o.heads, 1, 64);
    train::ToyResult r = train::run_toy_recipe(o);
    std::cout << "trained in " << r.train_seconds << " s (" << r.params << " parameters), final loss " << r.final_loss
              << "\n"
              << "zero-shot top-1, held-out images of seen combinations: " << r.zero_shot_seen << "\n"
              << "zero-shot top-1, held-out colour x shape combinations: " << r.zero_shot_heldout << "\n"
              << "image->text recall@1 " << r.i2t_r1 << "  @5 " << r.i2t_r5 << "\n"
              << "text->image recall@1 " << r.t2i_r1 << "  @5 " << r.t2i_r5 << "\n"
              << "model: " << o.out << "/model   metrics: " << o.out << "/metrics.csv   curves: " << o.out
              << "/loss.png, " << o.out << "/accuracy.png\n";
    return 0;
  }
  if (!a.has("--data")) throw UsageError("--init needs --data CSV|FOLDER (image-caption pairs)");
  train::FinetuneOptions o;
  o.init = a.get("--init");
  o.data = a.get("--data");
  read_training_options(a, o, /*min_batch=*/2);
  o.lock_image = a.has("--lock-image");
  o.lock_text = a.has("--lock-text");
  ClipTokenizer tok = load_tokenizer(a, o.init);
  train::FinetuneResult r = train::run_finetune(o, tok);
  std::cout << "fine-tuned on " << r.pairs << " pairs (" << r.skipped << " unreadable images skipped), "
            << r.trainable_params << " trainable / " << r.frozen_params << " frozen parameters\n"
            << "mean loss over the set: before " << r.eval_loss_before << ", after " << r.eval_loss_after << "\n"
            << "model: " << o.out << "/model\n";
  return 0;
}

ArgParser toy_eval_parser() {
  ArgParser p("toy-eval", "[--model DIR] [--images N] [--seed S]",
              "Evaluates a toy-world CLIP (default: the embedded model) on freshly generated images: zero-shot "
              "top-1 over the 80 colour x shape labels on held-out images of seen combinations and on the held-out "
              "combinations, image<->text recall@1/@5, and a few example predictions and text queries.");
  p.value("--model", "DIR", "a model folder with its tokenizer (default: weights/toy_clip)", "what")
      .value("--images", "N", "images per evaluation set (default 1000)", "what")
      .value("--seed", "S", "toy-world seed (default 0, the seed the embedded model was trained with)", "what")
      .value("--threads", "N", "OpenMP threads", "runtime");
  return p;
}

int toy_eval_main(const Parsed& a) {
  apply_runtime_options(a);
  std::string model = a.get("--model", "");
  if (model.empty()) {
    for (std::string c : {std::string("weights/toy_clip"), executable_dir() + "/../../weights/toy_clip"})
      if (std::ifstream(c + "/config.json").good()) {
        model = c;
        break;
      }
    if (model.empty()) throw Error("the embedded model weights/toy_clip was not found (run from the repository root or pass --model)");
  }
  int64_t n = a.get_int("--images", 1000, 10, 100000);
  uint64_t seed = static_cast<uint64_t>(a.get_int("--seed", 0, 0, (1LL << 62)));
  std::cout << "model: " << model << "\n";
  train::print_toy_examples(model, seed, std::cout);
  train::ToyResult r = train::evaluate_toy_model(model, n, seed);
  std::cout << "zero-shot top-1 over 80 labels, " << n << " held-out images of seen combinations: " << r.zero_shot_seen
            << "\n"
            << "zero-shot top-1 over 80 labels, " << n << " images of held-out colour x shape combinations: "
            << r.zero_shot_heldout << "\n"
            << "image->text recall@1 " << r.i2t_r1 << "  @5 " << r.i2t_r5 << "   text->image recall@1 " << r.t2i_r1
            << "  @5 " << r.t2i_r5 << "  (" << n << " held-out pairs)\n";
  return 0;
}

}  // namespace
}  // namespace vislang::cli

int run_toy_eval(int argc, char** argv) {
  vislang::cli::ArgParser p = vislang::cli::toy_eval_parser();
  return vislang::cli::run_command(p, argc, argv, vislang::cli::toy_eval_main);
}

int run_train(int argc, char** argv) {
  vislang::cli::ArgParser p = vislang::cli::train_parser();
  return vislang::cli::run_command(p, argc, argv, vislang::cli::train_main);
}
