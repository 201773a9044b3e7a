// train/vqa_recipe.cpp — see train/vqa_recipe.h. Read top to bottom: data, model, loop, outputs,
// evaluation, the comparison table.
#include "train/vqa_recipe.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "image/plot.h"
#include "image/png_write.h"
#include "kernels/ops.h"
#include "nn/optim.h"
#include "train/clip_trainer.h"  // TrainProgress, make_dirs, tokenize

namespace vislang::train {

static double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

static bool wanted(const VqaRecipeOptions& o, toy::QuestionType t) {
  return o.types.empty() || std::find(o.types.begin(), o.types.end(), static_cast<int>(t)) != o.types.end();
}

// ---- 1. data ------------------------------------------------------------------------------------
namespace {
struct RawSet {
  Tensor pixels;
  std::vector<std::string> questions;
  std::vector<int64_t> image_of, answer;
  std::vector<int> type;
};
// Images 0 .. n-1 of `split` and every wanted question about each. TRAIN questions never name a
// held-out combination (not even as an absent object).
RawSet raw_set(const toy::ToyWorld& w, const VqaRecipeOptions& o, toy::Split split, int64_t n) {
  std::vector<uint64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = static_cast<uint64_t>(i);
  std::vector<toy::ToySample> samples;
  RawSet r;
  r.pixels = w.batch(idx, split, &samples);  // (n, 3, S, S)
  std::vector<std::pair<int, int>> avoid;
  if (split == toy::Split::TRAIN) avoid = w.config().held_out_combos;
  for (int64_t i = 0; i < n; ++i)
    for (const toy::ToyQA& qa : toy::questions(samples[i], o.seed, avoid)) {
      if (!wanted(o, qa.type)) continue;
      r.questions.push_back(qa.question);
      r.image_of.push_back(i);
      r.answer.push_back(qa.answer_id);
      r.type.push_back(static_cast<int>(qa.type));
    }
  return r;
}
VqaSet finish(RawSet r, const ClipTokenizer& tok, int64_t ctx) {
  VqaSet s;
  s.pixels = r.pixels;
  s.ids = tokenize(tok, r.questions, ctx);  // (Q, T) i64
  s.image_of = std::move(r.image_of);
  s.answer = std::move(r.answer);
  s.type = std::move(r.type);
  return s;
}
}  // namespace

VqaData make_vqa_data(const VqaRecipeOptions& o) {
  toy::ToyWorldConfig wc;
  wc.layout = toy::Layout::CLASSIC;  // the world docs/fusion.md's figures were measured on
  wc.outline = 0;
  wc.seed = o.seed;
  wc.image_size = static_cast<int>(o.image_size);
  wc.two_object_prob = o.two_object_prob;
  toy::ToyWorld world(wc);
  RawSet train = raw_set(world, o, toy::Split::TRAIN, o.train_images);
  RawSet test = raw_set(world, o, toy::Split::TEST, o.eval_images);
  RawSet held = raw_set(world, o, toy::Split::HELDOUT_COMBOS, o.eval_images);
  VL_CHECK(!train.questions.empty(), "toy-vqa: no training question of the wanted types");

  VqaData d;
  // The vocabulary: a BPE learned from the training questions only.
  d.vocab = learn_bpe(train.questions);
  ClipTokenizer tok = make_tokenizer(d.vocab);
  int64_t ctx = 0;
  for (const RawSet* r : {&train, &test, &held})
    for (const std::string& q : r->questions) ctx = std::max<int64_t>(ctx, static_cast<int64_t>(tok.encode(q).size()) + 2);
  d.context_length = ctx;

  // Majority answers of the training questions.
  std::array<std::map<int64_t, int64_t>, toy::kNumQuestionTypes> per_type;
  std::map<int64_t, int64_t> all;
  for (size_t i = 0; i < train.answer.size(); ++i) {
    ++per_type[train.type[i]][train.answer[i]];
    ++all[train.answer[i]];
  }
  auto argmax = [](const std::map<int64_t, int64_t>& m) {
    int64_t best = -1, n = -1;
    for (const auto& [a, c] : m)
      if (c > n) { best = a; n = c; }
    return best;
  };
  for (int t = 0; t < toy::kNumQuestionTypes; ++t) d.majority[t] = argmax(per_type[t]);
  d.global_majority = argmax(all);

  d.train = finish(std::move(train), tok, ctx);
  d.test = finish(std::move(test), tok, ctx);
  d.heldout = finish(std::move(held), tok, ctx);
  return d;
}

// ---- 5. evaluation --------------------------------------------------------------------------------
static VqaAccuracy accuracy_of(const VqaSet& s, const std::vector<int64_t>& pred) {
  VqaAccuracy a;
  std::array<int64_t, toy::kNumQuestionTypes> hit{};
  int64_t total = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    ++a.count[s.type[i]];
    bool ok = pred[i] == s.answer[i];
    hit[s.type[i]] += ok;
    total += ok;
  }
  for (int t = 0; t < toy::kNumQuestionTypes; ++t)
    a.per_type[t] = a.count[t] > 0 ? static_cast<double>(hit[t]) / static_cast<double>(a.count[t]) : NAN;
  a.overall = pred.empty() ? 0.0 : static_cast<double>(total) / static_cast<double>(pred.size());
  return a;
}

VqaAccuracy majority_accuracy(const VqaData& d, const VqaSet& s) {
  std::vector<int64_t> pred(s.type.size());
  for (size_t i = 0; i < pred.size(); ++i) pred[i] = d.majority[s.type[i]];
  return accuracy_of(s, pred);
}

double global_majority_accuracy(const VqaData& d, const VqaSet& s) {
  return accuracy_of(s, std::vector<int64_t>(s.type.size(), d.global_majority)).overall;
}

static Tensor rows(const Tensor& x, const std::vector<int64_t>& idx) {
  return ops::index_select(x, 0, Tensor::from_vector(idx, {static_cast<int64_t>(idx.size())}));
}

static VqaAccuracy evaluate(const fusion::VqaModel& m, const VqaSet& s, int64_t batch = 256) {
  autograd::NoGradGuard no_grad;
  std::vector<int64_t> pred;
  int64_t Q = static_cast<int64_t>(s.answer.size());
  for (int64_t i = 0; i < Q; i += batch) {
    int64_t n = std::min(batch, Q - i);
    std::vector<int64_t> img(s.image_of.begin() + i, s.image_of.begin() + i + n);
    Tensor logits = m.logits(rows(s.pixels, img), s.ids.narrow(0, i, n));  // (n, A)
    for (int64_t p : ops::argmax(logits, 1).to_vector<int64_t>()) pred.push_back(p);
  }
  return accuracy_of(s, pred);
}

static nlohmann::json accuracy_json(const VqaAccuracy& a) {
  nlohmann::json j;
  for (int t = 0; t < toy::kNumQuestionTypes; ++t)
    if (a.count[t] > 0) j[toy::question_type_name(static_cast<toy::QuestionType>(t))] = {{"accuracy", a.per_type[t]}, {"questions", a.count[t]}};
  j["overall"] = a.overall;
  return j;
}

// ---- the recipe -----------------------------------------------------------------------------------
VqaResult run_vqa_recipe(const VqaRecipeOptions& o, const VqaData* given) {
  VL_CHECK(o.steps > 0 && o.batch >= 1, "toy-vqa: --steps and --batch must be > 0");
  fusion::Strategy strategy = fusion::parse_strategy(o.fusion);
  const DType out_dtype = o.saved_dtype();
  VqaData own;
  if (!given) own = make_vqa_data(o);
  const VqaData& d = given ? *given : own;
  if (o.write_files) {
    make_dirs(o.out);
    d.vocab.write(o.out);
  }

  // 2. model and optimiser
  fusion::FusionConfig cfg = fusion::preset(strategy, static_cast<int64_t>(d.vocab.tokens.size()), d.context_length,
                                            static_cast<int64_t>(toy::answer_vocab().size()));
  cfg.image_size = o.image_size;
  cfg.patch_size = o.patch_size;
  cfg.width = o.width;
  cfg.heads = o.heads;
  cfg.mlp_dim = 4 * o.width;
  cfg.fusion_hidden = 2 * o.width;
  Generator gen(o.seed * 1000003 + 17);
  WeightScope scope = WeightScope::with_initializer(
      [&](const std::string& n, const Shape& sh, DType dt) { return fusion::init_fusion_param(n, sh, dt, gen); });
  std::unique_ptr<fusion::VqaModel> model = fusion::make_vqa_model(scope, cfg);
  NamedTensors params = scope.params();
  VqaResult r;
  r.fusion = fusion::strategy_name(strategy);
  r.config = cfg;
  for (const auto& p : params) r.params += p.second.numel();
  r.flops_per_example = model->flops_per_example();
  optim::AdamW opt(params, o.adamw());
  const optim::CosineSchedule sched = o.schedule();
  if (o.progress)
    std::cerr << "toy-vqa " << cfg.describe() << "\n  " << r.params << " parameters, " << r.flops_per_example
              << " forward FLOPs/example; " << d.train.answer.size() << " training questions on " << d.train.pixels.size(0)
              << " images; " << o.steps << " steps of " << o.batch << "\n";

  // 3. the loop. The examples are visited in a fresh random order every epoch (seeded: every strategy
  // sees exactly the same batches).
  std::ofstream csv;
  if (o.write_files) {
    csv.open(o.out + "/metrics.csv");
    VL_CHECK(csv.good(), "toy-vqa: cannot write '", o.out, "/metrics.csv'");
    csv << "step,loss,lr,batch_acc,grad_norm,samples_per_s,elapsed_s\n";
  }
  const int64_t Q = static_cast<int64_t>(d.train.answer.size());
  std::vector<int64_t> order(static_cast<size_t>(Q));
  Generator shuffle(o.seed + 99);
  int64_t cursor = Q;  // forces a shuffle at the first step
  std::vector<double> xs, losses, accs;
  TrainProgress progress(o.steps, 0, o.batch, o.progress);
  double cpu0 = cpu_seconds();
  for (int64_t step = 0; step < o.steps; ++step) {
    std::vector<int64_t> ex(static_cast<size_t>(o.batch));
    for (int64_t b = 0; b < o.batch; ++b) {
      if (cursor == Q) {  // Fisher-Yates
        for (int64_t i = 0; i < Q; ++i) order[i] = i;
        for (int64_t i = Q - 1; i > 0; --i)
          std::swap(order[i], order[static_cast<int64_t>(shuffle.next_u64() % static_cast<uint64_t>(i + 1))]);
        cursor = 0;
      }
      ex[b] = order[cursor++];
    }
    std::vector<int64_t> img(ex.size()), ans(ex.size());
    for (size_t i = 0; i < ex.size(); ++i) {
      img[i] = d.train.image_of[ex[i]];
      ans[i] = d.train.answer[ex[i]];
    }
    Tensor pixels = rows(d.train.pixels, img);                            // (B, 3, S, S)
    Tensor ids = rows(d.train.ids, ex);                                   // (B, T)
    Tensor target = Tensor::from_vector(ans, {o.batch});                  // (B)

    opt.set_lr(sched.lr_at(step));
    Tensor logits = model->logits(pixels, ids);                           // (B, A)
    Tensor loss = ops::cross_entropy(logits, target);
    loss.backward();
    StepStats st;
    st.grad_norm = optim::clip_grad_norm_(params, o.grad_clip);
    opt.step();
    opt.zero_grad();
    st.loss = loss.item();
    std::vector<int64_t> pred = ops::argmax(logits.detach(), 1).to_vector<int64_t>();
    int64_t hit = 0;
    for (size_t i = 0; i < pred.size(); ++i) hit += pred[i] == ans[i];
    st.acc_i2t = st.acc_t2i = static_cast<double>(hit) / static_cast<double>(o.batch);
    progress.update(step + 1, st, opt.lr());
    xs.push_back(static_cast<double>(step + 1));
    losses.push_back(st.loss);
    accs.push_back(st.acc_i2t);
    if (o.write_files)
      csv << step + 1 << "," << st.loss << "," << opt.lr() << "," << st.acc_i2t << "," << st.grad_norm << ","
          << progress.samples_per_second() << "," << progress.elapsed() << "\n";
  }
  progress.finish();
  r.train_seconds = progress.elapsed();
  r.train_cpu_seconds = cpu_seconds() - cpu0;
  size_t tail = std::min<size_t>(20, losses.size());
  for (size_t i = losses.size() - tail; i < losses.size(); ++i) r.final_loss += losses[i] / static_cast<double>(tail);

  // 5. evaluation (before writing, so that eval.json can hold it)
  r.test = evaluate(*model, d.test);
  r.heldout = evaluate(*model, d.heldout);

  // 4. outputs
  if (o.write_files) {
    csv.close();
    nlohmann::json cj = {{"strategy", r.fusion}, {"image_size", cfg.image_size}, {"patch_size", cfg.patch_size},
                         {"vocab_size", cfg.vocab_size}, {"context_length", cfg.context_length},
                         {"answers", cfg.answers}, {"width", cfg.width}, {"heads", cfg.heads},
                         {"mlp_dim", cfg.mlp_dim}, {"joint_layers", cfg.joint_layers},
                         {"image_layers", cfg.image_layers}, {"text_layers", cfg.text_layers},
                         {"fusion_hidden", cfg.fusion_hidden}, {"eps", cfg.eps}};
    NamedTensors saved;
    for (const auto& [name, p] : params) saved.emplace_back(name, p.detach().to(out_dtype));
    save_safetensors(o.out + "/model.safetensors", saved, {{"vislang.fusion_config", cj.dump()}});
    // In-batch curves, smoothed over 20 steps so that the trend is readable.
    auto smooth = [](const std::vector<double>& v) {
      std::vector<double> s(v.size());
      double acc = 0;
      for (size_t i = 0; i < v.size(); ++i) {
        acc += v[i] - (i >= 20 ? v[i - 20] : 0.0);
        s[i] = acc / static_cast<double>(std::min<size_t>(i + 1, 20));
      }
      return s;
    };
    PlotOptions po;
    po.x_label = "step";
    plot_lines(o.out + "/loss.png", "toy VQA (" + r.fusion + " fusion): cross-entropy",
               {{"loss", xs, losses}, {"20-step mean", xs, smooth(losses)}}, po);
    plot_lines(o.out + "/accuracy.png", "toy VQA (" + r.fusion + " fusion): in-batch accuracy",
               {{"20-step mean", xs, smooth(accs)}}, po);
    nlohmann::json ej = {{"fusion", r.fusion},
                         {"config", cj},
                         {"parameters", r.params},
                         {"forward_flops_per_example", r.flops_per_example},
                         {"train_seconds", r.train_seconds},
                         {"train_cpu_seconds", r.train_cpu_seconds},
                         {"final_loss", r.final_loss},
                         {"test_seen_combinations", accuracy_json(r.test)},
                         {"heldout_combinations", accuracy_json(r.heldout)},
                         {"majority_baseline_test", accuracy_json(majority_accuracy(d, d.test))},
                         {"majority_baseline_heldout", accuracy_json(majority_accuracy(d, d.heldout))}};
    std::string s = ej.dump(2) + "\n";
    write_file_atomic(o.out + "/eval.json", s.data(), s.size());
  }
  return r;
}

// ---- the comparison table -------------------------------------------------------------------------
static std::string pct(double v) {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", 100.0 * v);
  return b;
}

static std::string render(const std::vector<std::vector<std::string>>& t, bool markdown) {
  std::vector<size_t> w(t[0].size(), 0);
  for (const auto& row : t)
    for (size_t c = 0; c < row.size(); ++c) w[c] = std::max(w[c], row[c].size());
  std::ostringstream o;
  for (size_t r = 0; r < t.size(); ++r) {
    for (size_t c = 0; c < t[r].size(); ++c) {
      std::string cell = t[r][c];
      std::string padded = c == 0 ? cell + std::string(w[c] - cell.size(), ' ') : std::string(w[c] - cell.size(), ' ') + cell;
      o << (markdown ? "| " : (c ? "  " : "")) << padded << (markdown ? " " : "");
    }
    o << (markdown ? "|\n" : "\n");
    if (r == 0) {
      for (size_t c = 0; c < t[r].size(); ++c)
        o << (markdown ? (c == 0 ? "| " + std::string(w[c], '-') + " " : "| " + std::string(w[c] - 1, '-') + ": ")
                       : (c ? "  " : "") + std::string(w[c], '-'));
      o << (markdown ? "|\n" : "\n");
    }
  }
  return o.str();
}

std::string vqa_table(const std::vector<VqaResult>& results, const VqaData& d, bool markdown) {
  std::ostringstream o;
  const char* names[2] = {"held-out images, seen colour x shape combinations (Split::TEST)",
                          "held-out colour x shape combinations (Split::HELDOUT_COMBOS)"};
  for (int split = 0; split < 2; ++split) {
    const VqaSet& s = split == 0 ? d.test : d.heldout;
    VqaAccuracy base = majority_accuracy(d, s);
    std::vector<int> types;
    for (int t = 0; t < toy::kNumQuestionTypes; ++t)
      if (base.count[t] > 0) types.push_back(t);
    std::vector<std::vector<std::string>> t;
    std::vector<std::string> head{"accuracy %"};
    for (int ty : types) head.push_back(toy::question_type_name(static_cast<toy::QuestionType>(ty)));
    head.push_back("overall");
    t.push_back(head);
    auto row = [&](const std::string& name, const VqaAccuracy& a) {
      std::vector<std::string> r{name};
      for (int ty : types) r.push_back(pct(a.per_type[ty]));
      r.push_back(pct(a.overall));
      t.push_back(r);
    };
    for (const VqaResult& r : results) row(r.fusion, split == 0 ? r.test : r.heldout);
    row("majority answer per type", base);
    std::vector<std::string> questions{"(questions)"};
    for (int ty : types) questions.push_back(std::to_string(base.count[ty]));
    questions.push_back(std::to_string(s.answer.size()));
    t.push_back(questions);
    o << (markdown ? "**" : "") << names[split] << (markdown ? "**" : "") << " — single most frequent answer overall: "
      << pct(global_majority_accuracy(d, s)) << " %\n\n"
      << render(t, markdown) << "\n";
  }
  std::vector<std::vector<std::string>> c{{"cost", "parameters", "train wall s", "train CPU s", "fwd MFLOP/example",
                                           "final loss"}};
  for (const VqaResult& r : results) {
    char a[32], b[32], f[32], l[32];
    std::snprintf(a, sizeof a, "%.1f", r.train_seconds);
    std::snprintf(b, sizeof b, "%.1f", r.train_cpu_seconds);
    std::snprintf(f, sizeof f, "%.2f", static_cast<double>(r.flops_per_example) / 1e6);
    std::snprintf(l, sizeof l, "%.3f", r.final_loss);
    c.push_back({r.fusion, std::to_string(r.params), a, b, f, l});
  }
  o << render(c, markdown);
  return o.str();
}

}  // namespace vislang::train
