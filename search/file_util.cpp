// search/file_util.cpp — see search/file_util.h.
#include "search/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace vislang::search {

bool read_file_bytes(const std::string& path, std::string& out, std::string& err, bool no_follow) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (no_follow ? O_NOFOLLOW : 0));
  if (fd < 0) {
    err = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    err = "not a regular file";
    return false;
  }
  out.resize(size_t(st.st_size));
  size_t off = 0;
  while (off < out.size()) {
    const ssize_t r = ::read(fd, &out[off], out.size() - off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      err = std::string("read failed: ") + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (r == 0) break;  // the file shrank while being read: keep what is there
    off += size_t(r);
  }
  ::close(fd);
  out.resize(off);
  return true;
}

bool file_stat(const std::string& path, int64_t& size, int64_t& mtime_ns) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  size = int64_t(st.st_size);
  mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000LL + int64_t(st.st_mtim.tv_nsec);
  return true;
}

bool inside_root(const std::string& path, const std::string& root) {
  std::error_code ec;
  const std::string r = fs::canonical(path, ec).string();
  if (ec) return false;
  const std::string base = root.size() > 1 && root.back() == '/' ? root.substr(0, root.size() - 1) : root;
  return r.size() > base.size() && r.compare(0, base.size(), base) == 0 && (base == "/" || r[base.size()] == '/');
}

}  // namespace vislang::search
