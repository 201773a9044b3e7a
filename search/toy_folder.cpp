// search/toy_folder.cpp — see search/toy_folder.h.
#include "search/toy_folder.h"

#include "image/png_write.h"

namespace vislang::search {

std::vector<ToyFolderItem> write_toy_folder(const toy::ToyWorld& world, const std::string& dir, int64_t n,
                                            toy::Split split) {
  std::vector<std::pair<std::string, std::string>> rows = world.write_folder(dir, n, split);
  std::vector<ToyFolderItem> items(rows.size());
  std::string csv = "path,label\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    // The labels need the sample's objects; sample() is a pure function of (config, split, index).
    const toy::ToySample sample = world.sample(uint64_t(i), split);
    const toy::ToyObject& o = sample.objects.at(0);
    items[i] = {rows[i].first, rows[i].second, toy::label_name(o.label()), o.color, o.shape};
    csv += rows[i].first + "," + items[i].label + "\n";  // names and labels hold no ',' or '"'
  }
  write_file_atomic(dir + "/labels.csv", csv.data(), csv.size());
  return items;
}

}  // namespace vislang::search
