// examples/fusion_strategies.cpp — early, late (concat and product) and hybrid fusion, side by side, on
// the toy world's VQA task: every strategy is trained from scratch with the SAME budget (the same data
// pool, batches, steps, learning-rate schedule; similar parameter counts) and evaluated the same way.
//
//   build/bin/fusion_strategies                      all four, ~10 minutes on 2 loaded cores
//   build/bin/fusion_strategies --steps 100          a quicker look
//   build/bin/fusion_strategies --markdown           the tables as Markdown (docs/fusion.md's)
//   [--out runs/fusion] [--fusion early,hybrid] [--batch 64] [--train-images 4000] [--eval-images 400]
//   [--lr 1e-3] [--warmup 40] [--types color,size] [--two-object-prob 0.5] [--width 64] [--threads 1]
//
// What it shows: train/vqa_recipe.h end to end — one VqaData (rendered images, questions, a BPE learned
// from the training questions) shared by every run, run_vqa_recipe per strategy, and vqa_table: accuracy
// per question type on held-out images of seen colour×shape combinations and on held-out combinations,
// the majority-answer baseline, parameters, training wall/CPU time and analytic forward FLOPs.
// What it leaves out: several seeds (one run per strategy: differences of a few points are noise),
// hyper-parameter tuning per strategy (deliberately: one budget for all), and the GPU.
#include <omp.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "examples/example_util.h"
#include "train/vqa_recipe.h"

static double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int main(int argc, char** argv) {
  example::Args args(argc, argv);
  // One thread by default: these models are small (a step is hundreds of tiny ops), and on a shared,
  // loaded 2-core machine every OpenMP barrier waits for a descheduled second thread — measured 2-10x
  // slower than one thread there, and no faster on an idle machine.
  omp_set_num_threads(args.has("threads") ? std::stoi(args.opts["threads"]) : 1);
  auto t0 = std::chrono::steady_clock::now();
  double c0 = cpu_now();
  vislang::train::VqaRecipeOptions o;
  auto num = [&](const char* k, int64_t def) { return args.has(k) ? std::stoll(args.opts[k]) : def; };
  o.steps = num("steps", o.steps);
  o.batch = num("batch", o.batch);
  o.train_images = num("train-images", o.train_images);
  o.eval_images = num("eval-images", o.eval_images);
  o.progress = !args.has("no-progress");
  if (args.has("lr")) o.lr = std::stod(args.opts["lr"]);
  o.warmup = num("warmup", o.warmup);
  o.width = num("width", o.width);
  if (args.has("two-object-prob")) o.two_object_prob = std::stod(args.opts["two-object-prob"]);
  if (args.has("types")) {  // e.g. --types color,size
    std::stringstream ss(args.opts["types"]);
    for (std::string t; std::getline(ss, t, ',');)
      for (int k = 0; k < vislang::toy::kNumQuestionTypes; ++k)
        if (t == vislang::toy::question_type_name(static_cast<vislang::toy::QuestionType>(k))) o.types.push_back(k);
  }
  std::string out = args.has("out") ? args.opts["out"] : "runs/fusion";
  std::vector<std::string> strategies{"early", "late", "late-product", "hybrid"};
  if (args.has("fusion")) {
    strategies.clear();
    std::stringstream ss(args.opts["fusion"]);
    for (std::string s; std::getline(ss, s, ',');) strategies.push_back(s);
  }

  // 1. the data every strategy shares
  vislang::train::VqaData data = vislang::train::make_vqa_data(o);
  std::fprintf(stderr, "data: %zu training questions on %lld images, %zu + %zu evaluation questions, vocab %zu, "
               "context %lld (%.1f s)\n", data.train.answer.size(), static_cast<long long>(data.train.pixels.size(0)),
               data.test.answer.size(), data.heldout.answer.size(), data.vocab.tokens.size(),
               static_cast<long long>(data.context_length),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

  // 2. one run per strategy, same options
  std::vector<vislang::train::VqaResult> results;
  for (const std::string& s : strategies) {
    o.fusion = s;
    o.out = out + "/" + s;
    results.push_back(vislang::train::run_vqa_recipe(o, &data));
  }

  // 3. the comparison
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << vislang::train::vqa_table(results, data, args.has("markdown"));
  std::printf("\n%lld steps of %lld examples per strategy; whole example: %.0f s wall, %.0f s CPU\n",
              static_cast<long long>(o.steps), static_cast<long long>(o.batch), wall, cpu_now() - c0);
  return 0;
}
