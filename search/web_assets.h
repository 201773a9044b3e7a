// search/web_assets.h — the search page's files (web/index.html, web/app.js, web/style.css), compiled
// into the binary by web/embed.cmake so that `vislang serve` needs nothing on disk but the DB.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace vislang::search {

struct WebAsset {
  const char* name;  // "index.html"
  const char* mime;  // "text/html; charset=utf-8"
  const unsigned char* data;
  size_t size;
};

// The embedded file called `name` (no folder), or nullptr.
const WebAsset* web_asset(const std::string& name);
std::vector<std::string> web_asset_names();

}  // namespace vislang::search
