// search/file_util.h — the file-system checks and reads the search engine shares: reading a whole file
// (optionally refusing a symlink), stat()ing size and mtime, and "does this path really lie inside that
// folder" (every symlink resolved) — the rule that keeps the index and the web server inside the
// folders they were given.
#pragma once
#include <cstdint>
#include <string>

namespace vislang::search {

// Reads the whole regular file at `path` into `out`. no_follow: a symbolic link as the last path
// component is refused (O_NOFOLLOW). On failure returns false and sets `err` (no exception).
bool read_file_bytes(const std::string& path, std::string& out, std::string& err, bool no_follow = false);
// Size in bytes and modification time in ns since the epoch; false when `path` cannot be stat()ed.
bool file_stat(const std::string& path, int64_t& size, int64_t& mtime_ns);
// True when `path`, resolved through every symlink, exists and lies strictly inside the canonical
// folder `root`.
bool inside_root(const std::string& path, const std::string& root);

}  // namespace vislang::search
