// tests/test_qformer_walkthrough.cpp — the toy Q-Former (train/qformer_recipe.h) and its walkthrough
// (examples/qformer_walkthrough.cpp), suite "qformer":
//   * the WordPiece vocabulary is deterministic, covers every toy caption, and is the committed one;
//   * the committed model weights/toy_qformer retrieves captions and colours far above chance;
//   * the walkthrough binary runs, its printed shapes and cross-attending layers match the model's
//     config, and its hand-composed passes equal the library's (it exits 1 otherwise);
//   * a short training run from scratch lowers the ITC loss and beats chance in the batch;
//   * a broken model folder, or an image encoder other than the one it was trained on, is an error.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <omp.h>

#include <doctest/doctest.h>

#include "tests/test_process.h"
#include "tests/test_util.h"
#include "train/qformer_recipe.h"

using namespace vislang;
using vislang::test::contains;
using vislang::test::slurp;
using vislang::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string repo(const std::string& rel) { return std::string(VISLANG_SOURCE_DIR) + "/" + rel; }

}  // namespace

TEST_SUITE("qformer") {

TEST_CASE("toy WordPiece vocabulary: deterministic, covers every caption, is the committed vocab.txt") {
  std::vector<std::string> v = train::toy_wordpiece_vocab();
  CHECK(v == train::toy_wordpiece_vocab());
  REQUIRE(v.size() > 5);
  CHECK(v[0] == "[PAD]");  // pad_token_id 0
  std::string text;
  for (const std::string& w : v) text += w + "\n";
  CHECK_MESSAGE(text == slurp(repo("weights/toy_qformer/vocab.txt")),
                "weights/toy_qformer/vocab.txt differs from toy_wordpiece_vocab(): retrain (docs/qformer.md)");
  WordPieceTokenizer tok = WordPieceTokenizer::from_vocab(repo("weights/toy_qformer/vocab.txt"));
  toy::ToyWorld world;
  for (toy::Split sp : {toy::Split::TRAIN, toy::Split::HELDOUT_COMBOS})
    for (uint64_t i = 1000; i < 1100; ++i)  // samples the vocabulary was not built from
      for (const std::string& c : toy::all_captions(world.sample(i, sp)))
        for (int64_t id : tok.encode(c)) REQUIRE_MESSAGE(id != tok.unk_id(), "[UNK] in \"", c, "\"");
}

TEST_CASE("the committed toy Q-Former retrieves captions and colours far above chance") {
  train::ToyQFormerBundle m = train::load_toy_qformer(repo("weights/toy_qformer"), repo("weights/toy_clip"));
  const int64_t n = 200;
  train::ToyRetrievalEval e = train::evaluate_toy_qformer(m, n, 0);
  MESSAGE("toy Q-Former on ", n, " TEST images: zero-shot ", e.zero_shot_top1, ", colour ", e.colour_acc, ", shape ",
          e.shape_acc, "; t2i R@1 ", e.t2i_r1, " R@5 ", e.t2i_r5, "; i2t R@1 ", e.i2t_r1, " R@5 ", e.i2t_r5);
  // Measured when committed (seed 0, 200 images): zero-shot 0.965, colour 0.99, shape 0.975, R@5 1 / 1.
  CHECK(e.zero_shot_top1 > 0.8);  // chance 1/80
  CHECK(e.colour_acc > 0.9);      // chance 0.1
  CHECK(e.shape_acc > 0.8);       // chance 0.125
  CHECK(e.t2i_r5 > 0.8);          // chance 5/n
  CHECK(e.i2t_r5 > 0.8);
}

TEST_CASE("the walkthrough runs and prints the config's shapes and cross-attending layers") {
  train::ToyQFormerBundle m = train::load_toy_qformer(repo("weights/toy_qformer"), repo("weights/toy_clip"));
  const blip2::Blip2Config& c = m.model.cfg;
  const int64_t n = 3, N1 = 1 + c.vision.num_patches();
  test::RunOptions o;
  o.cwd = repo("");
  o.merge_stderr = true;
  const test::RunResult run = test::run_program("qformer_walkthrough", {"--images", std::to_string(n)}, o);
  const std::string& out = run.out;  // stdout and stderr
  INFO(out);
  REQUIRE(run.status == 0);  // the walkthrough exits 1 when its passes differ from the library's
  auto shape = [](std::vector<int64_t> s) { return shape_str(s); };
  CHECK(contains(out, shape({n, N1, c.qformer.encoder_width})));           // the image tokens
  CHECK(contains(out, shape({n, c.num_query_tokens, c.qformer.width})));   // the queries in every layer
  CHECK(contains(out, shape({n, c.num_query_tokens, c.image_text_hidden_size})));  // image embeddings
  CHECK(contains(out, shape({n, c.num_query_tokens, n})));                 // per-query ITC cosines
  for (int64_t i = 0; i < c.qformer.layers; ++i) {
    const std::string head = "  layer " + std::to_string(i);
    const bool cross_i = c.qformer.has_cross_attention(i);
    CHECK_MESSAGE(contains(out, head + (cross_i ? "  (cross-attends)\n" : "  (no cross-attention)\n")), head);
    CHECK_MESSAGE(!contains(out, head + (cross_i ? "  (no cross-attention)\n" : "  (cross-attends)\n")), head);
  }
  // One heat-map block per cross-attending layer.
  size_t maps = 0;
  for (size_t at = 0; (at = out.find("where each query looks", at)) != std::string::npos; ++at) ++maps;
  int64_t cross = 0;
  for (int64_t i = 0; i < c.qformer.layers; ++i) cross += c.qformer.has_cross_attention(i);
  CHECK(maps == static_cast<size_t>(cross));
}

TEST_CASE("a short toy-qformer run from scratch lowers the ITC loss and beats chance in the batch") {
  TempDir out;
  train::QFormerRecipeOptions o;
  o.clip = repo("weights/toy_clip");
  o.out = out.dir().string();
  o.steps = 60;
  o.batch = 32;
  o.warmup = 10;
  o.train_images = 320;
  o.eval_images = 50;
  o.progress = false;
  o.write_files = false;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);  // tiny ops: a second thread only waits at barriers on a loaded machine
  train::QFormerRecipeResult r = train::run_qformer_recipe(o);
  omp_set_num_threads(threads);
  MESSAGE("60 steps of 32: loss ", r.first_loss, " -> ", r.final_loss, ", in-batch accuracy ", r.first_batch_acc,
          " -> ", r.final_batch_acc, " (chance 1/32), ", r.train_seconds, " s");
  CHECK(r.final_loss < r.first_loss - 0.3);
  CHECK(r.final_batch_acc > 8.0 / 32);  // measured 0.62
}

TEST_CASE("a broken toy Q-Former folder, or another image encoder, is an error naming the file") {
  TempDir tmp;
  const fs::path& d = tmp.dir();
  std::string e = test::error_of([&] { train::load_toy_qformer(d.string()); });
  CHECK(contains(e, "model.safetensors and vocab.txt"));
  fs::copy_file(repo("weights/toy_qformer/model.safetensors"), d / "model.safetensors");
  std::ofstream(d / "vocab.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n";
  e = test::error_of([&] { train::load_toy_qformer(d.string(), repo("weights/toy_clip")); });
  CHECK(contains(e, "vocab.txt"));
  e = test::error_of([&] { train::load_toy_qformer(repo("weights/toy_qformer"), d.string()); });
  CHECK(contains(e, d.string()));  // not a CLIP folder
  // An image encoder whose weights differ by one byte: the Q-Former was not trained on its tokens.
  fs::path clip = d / "clip";
  fs::create_directories(clip);
  for (const char* f : {"config.json", "model.safetensors", "vocab.json", "merges.txt"})
    fs::copy_file(repo("weights/toy_clip/") + f, clip / f);
  {
    std::fstream st(clip / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    st.seekp(-1, std::ios::end);
    st.put('\x7f');
  }
  e = test::error_of([&] { train::load_toy_qformer(repo("weights/toy_qformer"), clip.string()); });
  CHECK(contains(e, "XXH64"));
}

}  // TEST_SUITE
