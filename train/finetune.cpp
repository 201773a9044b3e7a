// train/finetune.cpp — see train/finetune.h.
#include "train/finetune.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/autograd.h"
#include "image/clip_preprocess.h"
#include "image/plot.h"
#include "nn/loss.h"
#include "train/checkpoint.h"
#include "train/clip_trainer.h"

namespace vislang::train {

namespace {
bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
std::string dir_of(const std::string& p) {
  size_t s = p.find_last_of('/');
  return s == std::string::npos ? "." : (s == 0 ? "/" : p.substr(0, s));
}
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// RFC 4180 records: fields separated by ',', optionally quoted with '"' ("" inside quotes is a
// quote), records end at a newline outside quotes. `lines` receives each record's first line number.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& path,
                                                std::vector<int>& lines) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  int line = 1, row_line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && field.empty()) quoted = true, any = true;
    else if (c == ',') row.push_back(field), field.clear(), any = true;
    else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) {
        row.push_back(field);
        rows.push_back(row);
        lines.push_back(row_line);
      }
      row.clear(), field.clear(), any = false;
      row_line = ++line;
    } else {
      field += c, any = true;
    }
  }
  VL_CHECK(!quoted, path, ": unterminated quoted field starting on line ", row_line);
  if (any || !field.empty()) {
    row.push_back(field);
    rows.push_back(row);
    lines.push_back(row_line);
  }
  return rows;
}

std::vector<std::pair<std::string, std::string>> read_csv_pairs(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  VL_CHECK(in.good(), "train: cannot read '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<int> lines;
  auto rows = parse_csv(ss.str(), path, lines);
  VL_CHECK(!rows.empty(), path, ": empty file (expected a header row with 'path' and 'caption' columns)");
  int pc = -1, cc = -1;
  for (size_t i = 0; i < rows[0].size(); ++i) {
    std::string h = lower(trim(rows[0][i]));
    if (h == "path" || h == "image" || h == "file" || h == "filepath" || h == "filename") pc = static_cast<int>(i);
    if (h == "caption" || h == "text" || h == "title") cc = static_cast<int>(i);
  }
  VL_CHECK(pc >= 0 && cc >= 0, path, ": line 1: the header must name a 'path' (or image/file/filepath) column and a "
           "'caption' (or text/title) column");
  std::vector<std::pair<std::string, std::string>> out;
  std::string base = dir_of(path);
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    VL_CHECK(static_cast<int>(row.size()) > std::max(pc, cc), path, ": line ", lines[r], ": ", row.size(),
             " fields, expected at least ", std::max(pc, cc) + 1);
    std::string p = trim(row[pc]), c = trim(row[cc]);
    VL_CHECK(!p.empty(), path, ": line ", lines[r], ": empty path");
    VL_CHECK(!c.empty(), path, ": line ", lines[r], ": empty caption for '", p, "'");
    out.emplace_back(p[0] == '/' ? p : base + "/" + p, c);
  }
  return out;
}
}  // namespace

std::vector<std::pair<std::string, std::string>> read_caption_pairs(const std::string& data) {
  if (is_file(data)) return read_csv_pairs(data);
  VL_CHECK(is_dir(data), "train: --data '", data, "' is neither a CSV file nor a folder");
  if (is_file(data + "/captions.csv")) return read_csv_pairs(data + "/captions.csv");
  // A folder of images with same-named .txt captions.
  std::vector<std::string> names;
  DIR* d = ::opendir(data.c_str());
  VL_CHECK(d, "train: cannot list '", data, "'");
  while (dirent* e = ::readdir(d)) names.push_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& n : names) {
    size_t dot = n.find_last_of('.');
    if (dot == std::string::npos) continue;
    std::string ext = lower(n.substr(dot + 1));
    if (ext != "jpg" && ext != "jpeg" && ext != "png" && ext != "bmp" && ext != "gif") continue;
    std::string txt = data + "/" + n.substr(0, dot) + ".txt";
    if (!is_file(txt)) continue;
    std::ifstream in(txt);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string c = trim(ss.str());
    VL_CHECK(!c.empty(), "train: caption file '", txt, "' is empty");
    out.emplace_back(data + "/" + n, c);
  }
  VL_CHECK(!out.empty(), "train: '", data, "' has no captions.csv and no image with a same-named .txt caption");
  return out;
}

FinetuneResult run_finetune(const FinetuneOptions& o, const ClipTokenizer& tok) {
  VL_CHECK(o.steps > 0 && o.batch >= 2, "train: --steps must be > 0 and --batch >= 2, got steps ", o.steps,
           ", batch ", o.batch);
  VL_CHECK(!(o.lock_image && o.lock_text), "train: --lock-image and --lock-text together leave nothing to train");
  const DType out_dtype = o.saved_dtype();  // before training: a wrong --save-dtype fails at once
  FinetuneResult r;
  make_dirs(o.out);
  TrainableClip m = load_trainable_clip(o.init, Locks{o.lock_image, o.lock_text});
  r.trainable_params = m.num_params(true);
  r.frozen_params = m.num_params() - r.trainable_params;

  // Data: every image preprocessed once (the set is small; a large one would stream).
  auto pairs = read_caption_pairs(o.data);
  std::vector<std::string> paths;
  for (const auto& p : pairs) paths.push_back(p.first);
  PreprocessConfig pc;
  pc.size = static_cast<int>(m.cfg.preprocess.size);
  pc.mean = m.cfg.preprocess.mean;
  pc.std = m.cfg.preprocess.std;
  auto pre = preprocess_files(paths, pc);
  std::vector<size_t> ok;
  for (size_t i = 0; i < pre.size(); ++i) {
    if (pre[i].ok) ok.push_back(i);
    else std::cerr << "vislang train: skipped " << pre[i].path << ": " << pre[i].error << "\n";
  }
  r.skipped = static_cast<int64_t>(pre.size() - ok.size());
  VL_CHECK(ok.size() >= 2, "train: '", o.data, "' has ", ok.size(), " readable image(s); the contrastive loss needs "
           "at least 2 pairs");
  r.pairs = static_cast<int64_t>(ok.size());
  std::vector<Tensor> px;
  std::vector<std::string> caps;
  for (size_t i : ok) {
    px.push_back(pre[i].pixels);
    caps.push_back(pairs[i].second);
  }
  Tensor pixels = ops::stack(px, 0);                                        // (N, 3, S, S)
  Tensor ids = tokenize(tok, caps, m.cfg.text.context_length);             // (N, T)
  int64_t N = pixels.size(0), B = std::min<int64_t>(o.batch, N);

  auto mean_loss = [&]() {  // the loss over the whole set in batches of B, no gradients
    autograd::NoGradGuard ng;
    double total = 0;
    int64_t n = 0;
    for (int64_t i = 0; i + B <= N; i += B, ++n)
      total += nn::clip_contrastive_loss(m.model.image_features(pixels.narrow(0, i, B)),
                                         m.model.text_features(ids.narrow(0, i, B)), m.logit_scale)
                   .item();
    return n ? total / static_cast<double>(n) : NAN;
  };
  r.eval_loss_before = mean_loss();

  optim::AdamW opt(m.trainable(), o.adamw());
  const optim::CosineSchedule sched = o.schedule();
  std::cerr << "fine-tuning " << o.init << " on " << N << " pairs: " << r.trainable_params << " trainable, "
            << r.frozen_params << " frozen parameters\n";

  // Epochs of a seeded permutation; each step takes the next B pairs.
  Generator gen(o.seed);
  std::vector<int64_t> perm;
  size_t at = 0;
  auto next_batch = [&]() {
    std::vector<int64_t> b;
    while (static_cast<int64_t>(b.size()) < B) {
      if (at == perm.size()) {
        perm.resize(static_cast<size_t>(N));
        for (int64_t i = 0; i < N; ++i) perm[i] = i;
        for (int64_t i = N - 1; i > 0; --i) std::swap(perm[i], perm[gen.next_u64() % static_cast<uint64_t>(i + 1)]);
        at = 0;
      }
      b.push_back(perm[at++]);
    }
    return Tensor::from_vector(b, {B});
  };

  std::ofstream csv(o.out + "/metrics.csv");
  std::vector<double> xs, ys;
  TrainProgress progress(o.steps, 0, B, o.progress);
  for (int64_t step = 0; step < o.steps; ++step) {
    Tensor idx = next_batch();
    opt.set_lr(sched.lr_at(step));
    StepStats st = contrastive_step(m, opt, ops::index_select(pixels, 0, idx), ops::index_select(ids, 0, idx), o.grad_clip);
    if (step == 0) r.first_loss = st.loss;
    r.last_loss = st.loss;
    progress.update(step + 1, st, opt.lr());
    xs.push_back(static_cast<double>(step + 1));
    ys.push_back(st.loss);
    if (csv.good()) csv << step + 1 << "," << st.loss << "," << opt.lr() << "," << st.grad_norm << "\n";
  }
  progress.finish();
  r.eval_loss_after = mean_loss();

  save_checkpoint(o.out + "/checkpoint.safetensors", m.params, &opt,
                  CheckpointState{o.steps, gen.state(), {{"recipe", "finetune"}, {"init", o.init}}});
  save_model_folder(o.out + "/model", m, out_dtype, is_file(o.init + "/vocab.json") ? o.init : "");
  plot_lines(o.out + "/loss.png", "fine-tuning loss", {Series{"loss", xs, ys, {0, 0, 0}}}, PlotOptions{});
  return r;
}

}  // namespace vislang::train
