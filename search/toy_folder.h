// search/toy_folder.h — a toy-world image folder for the search engine (tests, `vislang demo`,
// `vislang bench search`): datasets/toy_world.h renders the images and writes captions.csv; this adds
// labels.csv (path,label — the main object's "red circle"), which the indexer reads as each row's label.
//
// Where it sits: ToyWorld → **write_toy_folder** → DIR/*.png + captions.csv + labels.csv →
// `vislang index build --images DIR`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/toy_world.h"

namespace vislang::search {

struct ToyFolderItem {
  std::string file;     // "test_000012.png", relative to the folder
  std::string caption;  // the sample's caption
  std::string label;    // toy::label_name of the main object, e.g. "red circle"
  int color = 0, shape = 0;  // of the main object (toy::ColorId, toy::ShapeId)
};

// Samples 0 .. n-1 of `split`, as ToyWorld::write_folder writes them, plus DIR/labels.csv.
std::vector<ToyFolderItem> write_toy_folder(const toy::ToyWorld& world, const std::string& dir, int64_t n,
                                            toy::Split split = toy::Split::TEST);

}  // namespace vislang::search
