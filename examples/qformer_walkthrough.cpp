// examples/qformer_walkthrough.cpp — the BLIP-2 Q-Former, one layer at a time, on the toy world, with a
// tiny TRAINED Q-Former (weights/toy_qformer): 8 learned queries read the frozen toy CLIP's image tokens
// through cross-attention and come out as 8 image embeddings, one of which matches the caption best.
//
//   build/bin/qformer_walkthrough                    6 toy-world test images and their captions
//   build/bin/qformer_walkthrough --images 6 --first 20 --show 1
//   build/bin/qformer_walkthrough --model runs/toy-qformer/model   a model you trained yourself
//                                                    (vislang train --recipe toy-qformer, docs/qformer.md)
//
// The data flow, with the shapes printed at every step (n images, T caption tokens; the sizes of the
// committed model and of weights/toy_clip, 72 px images cut into 3×3 patches of 24 px):
//   pixels (n, 3, 72, 72) → frozen toy CLIP tower → image tokens (n, 10, 128)   [CLS + 3×3 patches]
//   query_tokens (1, 8, 64) → expand (n, 8, 64) → layernorm → 4 layers:
//        self-attention over the queries → cross-attention to the image tokens (layers 0 and 2 only)
//        → the QUERY feed-forward branch                                        → (n, 8, 64)
//   → vision_projection → L2-normalize → (n, 8, 64) image embeddings
//   caption → WordPiece ids (n, T) → embeddings → layernorm → the same 4 layers, text only (no
//        cross-attention; the TEXT feed-forward branch) → [CLS] → text_projection → (n, 64)
//   ITC score = max over the 8 queries of the cosine with the caption.
//
// What it shows: each Q-Former layer composed by hand from its modules (as models/blip2's
// QFormerLayer::forward does), which layers cross-attend, where each query looks in the image (an
// ASCII heat map per query of its cross-attention over the patches), the two feed-forward
// branches, the per-query ITC scores, and two checks against the library: the attention maps
// reproduce the cross-attention's output, and the hand-composed passes equal train::ToyQFormer's.
// What it leaves out: training (train/qformer_recipe.cpp), the ITM head and BLIP-2's captioning loss
// (not trained here; the joint [queries; text] pass they use is shown with its shapes only), the GPU.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "datasets/toy_world.h"
#include "examples/example_util.h"
#include "kernels/ops.h"
#include "train/qformer_recipe.h"

using namespace vislang;

// One printed line per step: what happened, then the shape.
static void show(const std::string& what, const Tensor& t) {
  std::printf("    %-72s %s\n", what.c_str(), shape_str(t.shape()).c_str());
}

// ---- the image, on the encoder's patch grid (3×3 for the toy CLIP) --------------------------------------
// '#' where a patch holds the main object's (objects[0]) centre or is at least a quarter that object,
// '+' the same for the second object, '.' background.
static std::vector<char> object_grid(const toy::ToySample& s, int64_t patch) {
  const int64_t g = s.width / patch;
  std::vector<char> grid(static_cast<size_t>(g * g), '.');
  for (int64_t r = 0; r < g; ++r)
    for (int64_t c = 0; c < g; ++c)
      for (size_t o = 0; o < s.objects.size(); ++o) {
        int64_t near = 0;  // pixels of this patch within the colour jitter of object o
        for (int64_t y = r * patch; y < (r + 1) * patch; ++y)
          for (int64_t x = c * patch; x < (c + 1) * patch; ++x) {
            const uint8_t* p = &s.rgb[static_cast<size_t>((y * s.width + x) * 3)];
            int d = 0;
            for (int k = 0; k < 3; ++k) d += std::abs(int(p[k]) - int(s.objects[o].rgb[k]));
            near += d <= 45;
          }
        const toy::ToyObject& ob = s.objects[o];
        const bool centre = int64_t(ob.cx) / patch == c && int64_t(ob.cy) / patch == r;
        if ((centre || 4 * near >= patch * patch) && grid[r * g + c] == '.') grid[r * g + c] = o == 0 ? '#' : '+';
      }
  return grid;
}

// ---- cross-attention, opened up --------------------------------------------------------------------
// The attention probabilities of a PostNormAttention block: softmax(q kᵀ / √D) per head, (B, H, Tq, Tk).
static Tensor attention_probs(const nn::PostNormAttention& a, const Tensor& x, const Tensor& kv) {
  Tensor q = nn::split_heads(a.query.forward(x), a.heads);   // (B, H, Tq, D)
  Tensor k = nn::split_heads(a.key.forward(kv), a.heads);    // (B, H, Tk, D)
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  return ops::softmax(ops::matmul(q, k, false, true, Tensor(), Activation::NONE, scale), -1);  // (B, H, Tq, Tk)
}

// Heat maps of every query's attention over the patches of image b, side by side, next to the image.
// Each map is scaled to its own largest patch weight; under it: that weight and the CLS token's, and
// where that patch is.
static void print_heat_maps(const Tensor& probs, int64_t b, const std::vector<char>& grid, int64_t g) {
  const char* ramp = " .:-=+*#%@";
  const int64_t Q = probs.size(1), N1 = probs.size(2);  // probs (n, Q, 1 + N), heads averaged
  const int W = static_cast<int>(std::max<int64_t>(g, 8) + 2);  // one column: a map, or "0.24/0.00"
  std::vector<float> p = probs.select(0, b).contiguous().to_vector<float>();  // (Q, 1 + N)
  auto cell = [&](const std::string& text) { std::printf("%-*s", W, text.c_str()); };
  std::printf("      ");
  cell("image");
  for (int64_t q = 0; q < Q; ++q) cell("q" + std::to_string(q));
  std::printf("\n");
  for (int64_t r = 0; r < g; ++r) {
    std::printf("      ");
    cell(std::string(grid.begin() + r * g, grid.begin() + (r + 1) * g));
    for (int64_t q = 0; q < Q; ++q) {
      const float* row = &p[q * N1];
      const float mx = *std::max_element(row + 1, row + N1);
      std::string line;
      for (int64_t c = 0; c < g; ++c) line += ramp[std::min(9, int(9.99f * row[1 + r * g + c] / mx))];
      cell(line);
    }
    std::printf("\n");
  }
  char buf[64];
  std::printf("      ");
  cell("max/cls");
  for (int64_t q = 0; q < Q; ++q) {
    const float* row = &p[q * N1];
    std::snprintf(buf, sizeof buf, "%.2f/%.2f", *std::max_element(row + 1, row + N1), row[0]);
    cell(buf);
  }
  std::printf("\n      ");
  cell("top patch");
  for (int64_t q = 0; q < Q; ++q) {
    const float* row = &p[q * N1];
    const int64_t k = std::max_element(row + 1, row + N1) - (row + 1);  // the '@' of the map
    std::snprintf(buf, sizeof buf, "(%lld, %lld)", static_cast<long long>(k / g), static_cast<long long>(k % g));
    cell(buf);
  }
  std::printf("(row, column)\n");
}

// ---- one Q-Former layer, composed by hand --------------------------------------------------------------
// Layer i of `qformer`, step by step as models/blip2's QFormerLayer::forward runs it.
// h (n, Q + T, C): Q query positions, then T text positions (either may be 0). Prints each step;
// returns the layer's output and, when the layer cross-attends, the heads-averaged attention map
// (n, Q, 1 + N) in *cross_map.
static Tensor walk_layer(const blip2::QFormerModel& qformer, int64_t i, int64_t cross_every, const Tensor& h, int64_t Q,
                         const Tensor& pad, const Tensor& image, Tensor* cross_map) {
  const blip2::QFormerLayer& L = qformer.layers[i];
  const int64_t T = h.size(1) - Q;
  const std::string who = Q > 0 && T > 0 ? "[" + std::to_string(Q) + " queries; " + std::to_string(T) + " text tokens]"
                          : Q > 0        ? std::to_string(Q) + " queries"
                                         : std::to_string(T) + " text tokens (padding masked)";
  std::printf("  layer %lld%s\n", static_cast<long long>(i),
              Q == 0 ? "" : L.has_cross_attention ? "  (cross-attends)" : "  (no cross-attention)");
  ops::AttentionOptions self_opt;
  self_opt.key_padding_mask = pad;
  Tensor a = L.attention.forward(h, h, self_opt);  // (n, Q + T, C) post-LN: LayerNorm(h + attn(h))
  show("self-attention over " + who, a);
  Tensor out_q, out_t;
  if (Q > 0) {
    Tensor aq = a.narrow(1, 0, Q);  // (n, Q, C): only the queries go on to the image
    if (L.has_cross_attention) {
      Tensor probs = attention_probs(L.crossattention, aq, image);  // (n, H, Q, 1 + N)
      aq = L.crossattention.forward(aq, image);
      show("cross-attention: queries read the " + std::to_string(image.size(1)) + " image tokens (key/value " +
               std::to_string(image.size(2)) + " -> " + std::to_string(aq.size(2)) + ")",
           aq);
      if (cross_map) *cross_map = ops::mean(probs, 1);  // (n, Q, 1 + N), averaged over heads
    } else {
      std::printf("    no cross-attention in this layer (only layers i with i %% %lld == 0 cross-attend)\n",
                  static_cast<long long>(cross_every));
    }
    show("feed-forward, QUERY branch: intermediate_query (" + std::to_string(L.ffn_query.intermediate.weight.size(0)) +
             ") -> output_query",
         out_q = L.ffn_query.forward(aq));
  }
  if (T > 0) {
    if (Q == 0) std::printf("    no cross-attention: text never reads the image directly\n");
    show("feed-forward, TEXT branch: intermediate (" + std::to_string(L.ffn_text.intermediate.weight.size(0)) +
             ") -> output",
         out_t = L.ffn_text.forward(a.narrow(1, Q, T)));
  }
  if (!out_t.defined()) return out_q;
  if (!out_q.defined()) return out_t;
  Tensor both = ops::concat({out_q, out_t}, 1);
  show("[query outputs; text outputs]", both);
  return both;
}

static double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.contiguous().to_vector<float>(), y = b.contiguous().to_vector<float>();
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, double(std::fabs(x[i] - y[i])));
  return d;
}

int main(int argc, char** argv) {
  example::Args args(argc, argv);
  if (args.has("help")) {
    std::printf("usage: qformer_walkthrough [--images N] [--first I] [--show K] [--model DIR] [--clip DIR]\n"
                "  --images N   toy-world TEST images (and their captions) to walk through, 2..16 (default 6)\n"
                "  --first I    index of the first one (default 0)\n"
                "  --show K     which image's attention maps to print (default 0)\n"
                "  --model DIR  a trained toy Q-Former (default weights/toy_qformer)\n"
                "  --clip DIR   its frozen image encoder (default: the one the model names, weights/toy_clip)\n");
    return 0;
  }
  try {
    InferenceMode no_grad;
    const std::string root = example::repo_root();
    const std::string model_dir = args.get("model", root.empty() ? "weights/toy_qformer" : root + "/weights/toy_qformer");
    const train::ToyQFormerBundle m = train::load_toy_qformer(model_dir, args.get("clip"));
    const blip2::Blip2Config& cfg = m.model.cfg;
    const int64_t n = std::stoll(args.get("images", "6")), first = std::stoll(args.get("first", "0")),
                  shown = std::stoll(args.get("show", "0"));
    VL_CHECK(n >= 2 && n <= 16 && first >= 0 && shown >= 0 && shown < n,
             "--images must be in [2, 16], --first >= 0 and --show in [0, --images)");
    const int64_t Q = cfg.num_query_tokens, C = cfg.qformer.width, P = cfg.vision.patch_size,
                  g = cfg.vision.image_size / P, every = cfg.qformer.cross_attention_frequency;
    std::string cross;
    for (int64_t i = 0; i < cfg.qformer.layers; ++i)
      if (cfg.qformer.has_cross_attention(i)) cross += (cross.empty() ? "" : ", ") + std::to_string(i);
    std::printf("Toy Q-Former %s: %lld queries, width %lld, %lld layers (%lld heads, MLP %lld), cross-attention in "
                "layers %s; WordPiece vocabulary of %lld tokens; embeddings of %lld.\n",
                model_dir.c_str(), static_cast<long long>(Q), static_cast<long long>(C),
                static_cast<long long>(cfg.qformer.layers), static_cast<long long>(cfg.qformer.heads),
                static_cast<long long>(cfg.qformer.mlp_dim), cross.c_str(),
                static_cast<long long>(cfg.qformer.vocab_size), static_cast<long long>(cfg.image_text_hidden_size));
    std::printf("Frozen image encoder: %s's vision tower, the tokens after layer %lld of %lld.\n\n", m.image_encoder.c_str(),
                static_cast<long long>(m.vision.layer), static_cast<long long>(m.vision.clip_cfg.vision.layers));

    // 1. The inputs: n test images of the toy world and their captions.
    toy::ToyWorldConfig wc;
    wc.image_size = static_cast<int>(cfg.vision.image_size);
    toy::ToyWorld world(wc);
    std::vector<toy::ToySample> samples;
    std::vector<std::string> captions;
    for (int64_t i = 0; i < n; ++i) {
      samples.push_back(world.sample(static_cast<uint64_t>(first + i), toy::Split::TEST));
      captions.push_back(samples.back().caption);
    }
    Tensor pixels = toy::to_tensor(samples);  // (n, 3, 72, 72), CLIP-normalized
    std::printf("1. Inputs: %lld toy-world test images (TEST %lld..%lld) and their captions\n",
                static_cast<long long>(n), static_cast<long long>(first), static_cast<long long>(first + n - 1));
    for (int64_t i = 0; i < n; ++i) std::printf("    image %lld: \"%s\"\n", static_cast<long long>(i), captions[i].c_str());
    show("pixels", pixels);

    // 2. The frozen image encoder: every token, not the pooled vector.
    std::printf("\n2. Frozen image encoder (no gradients ever reach it)\n");
    const clip::VisionTransformer& tower = m.vision.tower;
    Tensor x = tower.embed(pixels);  // (n, 10, 128): CLS + 3×3 patches
    show("patch conv " + std::to_string(P) + "x" + std::to_string(P) + " + [CLS] + positions: 1 + " +
             std::to_string(g) + "x" + std::to_string(g) + " tokens",
         x);
    x = tower.pre_layrnorm.forward(x);
    for (int64_t i = 0; i < m.vision.layer; ++i) x = tower.encoder.layers[i].forward(x, {});
    show("pre_layrnorm, then CLIP layers 0.." + std::to_string(m.vision.layer - 1) + " (of " +
             std::to_string(m.vision.clip_cfg.vision.layers) + ")",
         x);
    Tensor image = tower.post_layernorm.forward(x);  // (n, 10, 128): what the queries read
    show("post_layernorm on every token = the image tokens the Q-Former reads", image);

    // 3. The queries through the Q-Former, layer by layer.
    std::printf("\n3. The image pass: only the %lld queries, reading the image\n", static_cast<long long>(Q));
    show("query_tokens (learned)", m.model.query_tokens);
    Tensor h = m.model.query_tokens.expand({n, Q, C});  // the same queries for every image
    show("expanded to the batch", h);
    h = m.model.qformer.layernorm.forward(h);
    show("qformer.layernorm (BERT's embedding LayerNorm)", h);
    std::vector<char> grid = object_grid(samples[shown], P);
    for (int64_t i = 0; i < cfg.qformer.layers; ++i) {
      Tensor map;
      h = walk_layer(m.model.qformer, i, every, h, Q, Tensor(), image, &map);
      if (!map.defined()) continue;
      std::printf("    where each query looks in image %lld (\"%s\"; # = %s%s):\n", static_cast<long long>(shown),
                  captions[shown].c_str(), toy::describe(samples[shown].objects[0], false).c_str(),
                  samples[shown].objects.size() > 1 ? (", + = " + toy::describe(samples[shown].objects[1], false)).c_str() : "");
      print_heat_maps(map, shown, grid, g);
      // The share of each query's attention on the main object's patches, over all n images.
      std::vector<double> on_object(static_cast<size_t>(Q), 0.0);
      double uniform = 0;
      for (int64_t b = 0; b < n; ++b) {
        std::vector<char> gb = object_grid(samples[b], P);
        std::vector<float> p = map.select(0, b).contiguous().to_vector<float>();  // (Q, 1 + N)
        const double cells = static_cast<double>(std::count(gb.begin(), gb.end(), '#'));
        uniform += cells / static_cast<double>(gb.size()) / static_cast<double>(n);
        for (int64_t q = 0; q < Q; ++q)
          for (size_t c = 0; c < gb.size(); ++c)
            if (gb[c] == '#') on_object[q] += p[q * (1 + g * g) + 1 + c] / static_cast<double>(n);
      }
      std::printf("      attention on the main object's patches, mean of the %lld images:", static_cast<long long>(n));
      for (int64_t q = 0; q < Q; ++q) std::printf(" q%lld %.2f", static_cast<long long>(q), on_object[q]);
      std::printf("  (spread evenly: %.2f)\n", uniform);
    }
    Tensor img_emb = ops::l2_normalize(m.model.vision_projection.forward(h), -1);
    show("vision_projection, L2-normalize: one embedding per query", img_emb);

    // 4. The text pass: the same layers, text only, with the text feed-forward branch.
    std::printf("\n4. The text pass: the caption alone through the same layers\n");
    WordPieceTokenizer::Batch tb = m.tokenize(captions);  // ids, attention_mask (n, T)
    std::string toks;
    for (const std::string& t : m.tokenizer.tokenize(captions[0])) toks += " " + t;
    std::printf("    WordPiece of caption 0: [CLS]%s [SEP]\n", toks.c_str());
    show("ids, zero-padded to the longest caption", tb.ids);
    Tensor pad = train::key_padding_from_attention_mask(tb.attention_mask);  // (n, T) u8 or undefined
    Tensor t = m.model.embeddings.forward(tb.ids);
    show("word + position embeddings", t);
    t = m.model.qformer.layernorm.forward(t);
    show("qformer.layernorm (the same one the queries went through)", t);
    for (int64_t i = 0; i < cfg.qformer.layers; ++i) t = walk_layer(m.model.qformer, i, every, t, 0, pad, Tensor(), nullptr);
    Tensor txt_emb = ops::l2_normalize(m.model.text_projection.forward(t.select(1, 0)), -1);
    show("[CLS] position -> text_projection, L2-normalize", txt_emb);

    // 5. ITC: each query's cosine with the caption; the best query is the image's score.
    std::printf("\n5. ITC: cosine of every query embedding with every caption embedding, then the max over queries\n");
    Tensor per_query;
    Tensor itc = train::ToyQFormer::itc_scores(img_emb, txt_emb, &per_query);  // (n, n); per_query (n, Q, n)
    show("per-query cosines (image, query, caption)", per_query);
    show("ITC scores = max over queries (image, caption)", itc);
    std::vector<float> pq = per_query.contiguous().to_vector<float>(), sc = itc.contiguous().to_vector<float>();
    std::printf("    image with its own caption, per query:\n      image ");
    for (int64_t q = 0; q < Q; ++q) std::printf("  q%-4lld", static_cast<long long>(q));
    std::printf("    max  best\n");
    for (int64_t b = 0; b < n; ++b) {
      std::printf("      %5lld ", static_cast<long long>(b));
      int64_t best = 0;
      for (int64_t q = 0; q < Q; ++q) {
        const float v = pq[(b * Q + q) * n + b];
        best = v > pq[(b * Q + best) * n + b] ? q : best;
        std::printf(" %6.3f", v);
      }
      std::printf("  %6.3f  q%lld\n", sc[b * n + b], static_cast<long long>(best));
    }
    std::vector<int64_t> wins(static_cast<size_t>(Q), 0);  // which query gives the max, over all n × n pairs
    std::vector<int64_t> winner = ops::argmax(per_query, 1).to_vector<int64_t>();  // (n, n)
    for (int64_t w : winner) ++wins[w];
    std::printf("    the query that gives the max, counted over all %lld (image, caption) pairs:",
                static_cast<long long>(n * n));
    for (int64_t q = 0; q < Q; ++q) std::printf(" q%lld %lld", static_cast<long long>(q), static_cast<long long>(wins[q]));
    std::printf("\n");
    std::printf("    ITC score matrix (rows: images, columns: captions; * = the best caption of the row):\n");
    int64_t right = 0;
    for (int64_t b = 0; b < n; ++b) {
      int64_t best = 0;
      for (int64_t j = 0; j < n; ++j) best = sc[b * n + j] > sc[b * n + best] ? j : best;
      right += best == b;
      std::printf("      %5lld ", static_cast<long long>(b));
      for (int64_t j = 0; j < n; ++j) std::printf(" %6.3f%s", sc[b * n + j], j == best ? "*" : " ");
      std::printf("\n");
    }
    std::printf("    %lld of %lld images score their own caption highest (chance: 1 in %lld; a caption that fits\n"
                "    several of these images, e.g. two of one colour and shape, scores them alike)\n",
                static_cast<long long>(right), static_cast<long long>(n), static_cast<long long>(n));

    // 6. The joint pass BLIP-2's ITM head and captioning use: queries and text in one sequence.
    std::printf("\n6. The joint pass [queries; text] (BLIP-2's ITM and captioning; shapes only: this model has no\n"
                "   ITM head). Self-attention spans both; only the query positions cross-attend.\n");
    Tensor joint_pad;
    if (pad.defined()) joint_pad = ops::concat({Tensor::zeros({n, Q}, DType::U8), pad}, 1);  // queries never padded
    Tensor j = m.model.qformer.layernorm.forward(ops::concat({m.model.query_tokens.expand({n, Q, C}),
                                                              m.model.embeddings.forward(tb.ids)}, 1));
    show("[query_tokens; text embeddings] -> layernorm", j);
    j = walk_layer(m.model.qformer, 0, every, j, Q, joint_pad, image, nullptr);
    std::printf("    (layers 1..%lld alike)\n", static_cast<long long>(cfg.qformer.layers - 1));

    // 7. Checks against the library.
    std::printf("\n7. Checks\n");
    {
      // (a) The attention map is what cross-attention computes: LayerNorm(x + dense(Σ_k P·v)).
      const blip2::QFormerLayer& L0 = m.model.qformer.layers[0];
      Tensor q0 = m.model.qformer.layernorm.forward(m.model.query_tokens.expand({n, Q, C}));
      Tensor a0 = L0.attention.forward(q0, q0);                              // (n, Q, C)
      Tensor p0 = attention_probs(L0.crossattention, a0, image);             // (n, H, Q, 1 + N)
      Tensor v0 = nn::split_heads(L0.crossattention.value.forward(image), L0.crossattention.heads);  // (n, H, 1+N, D)
      Tensor by_hand = L0.crossattention.norm.forward(
          ops::add(a0, L0.crossattention.dense.forward(nn::merge_heads(ops::matmul(p0, v0)))));
      std::printf("    layer 0 cross-attention rebuilt from its attention map vs the module: max |diff| %.2e\n",
                  max_abs_diff(by_hand, L0.crossattention.forward(a0, image)));
    }
    const double d_img = max_abs_diff(img_emb, m.model.image_embeds(image));
    const double d_txt = max_abs_diff(txt_emb, m.model.text_embeds(tb.ids, tb.attention_mask));
    const double d_enc = max_abs_diff(image, m.vision.forward(pixels));
    std::printf("    image tokens by hand vs FrozenVisionTokens::forward:            max |diff| %.2e\n", d_enc);
    std::printf("    image embeddings by hand vs ToyQFormer::image_embeds:           max |diff| %.2e\n", d_img);
    std::printf("    text embeddings by hand vs ToyQFormer::text_embeds:             max |diff| %.2e\n", d_txt);
    return d_img < 1e-4 && d_txt < 1e-4 && d_enc < 1e-4 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qformer_walkthrough: %s\n", e.what());
    return 1;
  }
}
