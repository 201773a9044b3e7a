// examples/toy_world_gallery.cpp — look at the toy-world data: a grid of 32 training samples (captions on
// stdout), one held-out-combination sample at 224 x 224, a few VQA questions, and a demo loss/accuracy
// plot, all written as PNGs to a folder.
//
//   build/bin/toy_world_gallery [DIR] [--seed N] [--size S]       (DIR defaults to /tmp/vislang_toy)
//
// What it shows: ToyWorld::sample (a pure function of seed, split and index), the structured labels
// every sample carries, questions() for VQA, write_png and plot_lines.
// What it leaves out: tensors (ToyWorld::batch / to_tensor feed a model; see datasets/toy_world.h) and
// training — the plotted curves are synthetic, only there to show the plot renderer.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "datasets/toy_world.h"
#include "image/plot.h"
#include "image/png_write.h"

using namespace vislang;

int main(int argc, char** argv) {
  std::string dir = "/tmp/vislang_toy";
  toy::ToyWorldConfig cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seed" && i + 1 < argc) {
      cfg.seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--size" && i + 1 < argc) {
      cfg.image_size = std::atoi(argv[++i]);
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: toy_world_gallery [DIR] [--seed N] [--size S]\n");
      return 0;
    } else {
      dir = a;
    }
  }
  try {
    std::filesystem::create_directories(dir);
    const toy::ToyWorld world(cfg);
    const int S = cfg.image_size, cols = 8, rows = 4, pad = 4;

    // 1. A grid of 32 training samples on a white canvas; captions to stdout in grid order.
    Image grid = Image::blank(cols * (S + pad) + pad, rows * (S + pad) + pad);
    std::fill(grid.rgb.begin(), grid.rgb.end(), 255);
    for (int i = 0; i < cols * rows; ++i) {
      const toy::ToySample s = world.sample(i, toy::Split::TRAIN);
      const int gx = pad + (i % cols) * (S + pad), gy = pad + (i / cols) * (S + pad);
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x)
          for (int c = 0; c < 3; ++c) grid.pixel(gx + x, gy + y)[c] = s.rgb[(y * S + x) * 3 + c];
      std::printf("%2d  [%s, %s bg]  %s\n", i, toy::label_name(toy::label_of(s)).c_str(),
                  toy::background_name(s.background), s.caption.c_str());
    }
    write_png(dir + "/grid.png", grid);

    // 2. A held-out combination at CLIP's resolution, with its labels and questions.
    toy::ToyWorldConfig big = cfg;
    big.image_size = 224;
    const toy::ToySample h = toy::ToyWorld(big).sample(0, toy::Split::HELDOUT_COMBOS);
    toy::write_png(dir + "/heldout_224.png", h);
    std::printf("\nheldout_224.png: %s\n", h.caption.c_str());
    for (const toy::ToyObject& o : h.objects)
      std::printf("  object: %s, %s, cell %s, centre (%.1f, %.1f), bbox [%.1f, %.1f) x [%.1f, %.1f)\n",
                  toy::label_name(o.label()).c_str(), toy::size_names()[o.size].c_str(),
                  toy::cell_names()[o.cell].c_str(), o.cx, o.cy, o.x0, o.x1, o.y0, o.y1);
    for (const toy::ToyQA& qa : toy::questions(h))
      std::printf("  [%s] %s -> %s\n", toy::question_type_name(qa.type), qa.question.c_str(), qa.answer.c_str());

    // 3. A demo plot: synthetic loss (log scale) and accuracy curves.
    Series train{"train loss", {}, {}}, val{"val loss", {}, {}};
    for (int step = 0; step <= 2000; step += 10) {
      const double loss = 4.0 * std::exp(-step / 400.0) + 0.15 + 0.05 * std::sin(step * 0.37);
      train.x.push_back(step), train.y.push_back(loss);
      if (step % 200 == 0) val.x.push_back(step), val.y.push_back(loss * 1.1 + 0.05);
    }
    PlotOptions po;
    po.log_y = true;
    po.x_label = "step";
    po.y_label = "loss";
    plot_lines(dir + "/loss.png", "toy world: contrastive loss", {train, val}, po);
    Series acc{"zero-shot acc %", {}, {}};
    for (int e = 0; e <= 20; ++e) acc.y.push_back(100.0 * (1.0 - std::exp(-e / 5.0)));
    PlotOptions pa;
    pa.x_label = "epoch";
    plot_lines(dir + "/accuracy.png", "held-out accuracy", {acc}, pa);

    std::printf("\nwrote %s/grid.png, heldout_224.png, loss.png, accuracy.png\n", dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "toy_world_gallery: %s\n", e.what());
    return 1;
  }
  return 0;
}
