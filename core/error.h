// core/error.h — the one exception type of vislang and the check macros that raise it.
//
// Every user-facing failure (bad shapes, wrong dtype, malformed file, missing tensor) is a
// vislang::Error whose message names the operation and what was expected. Nothing aborts.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace vislang {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void format_into(std::ostringstream&) {}
template <typename T, typename... Rest>
void format_into(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  format_into(os, rest...);
}
}  // namespace detail

// Concatenate any streamable values into a string: str("x=", 3, " y=", shape) .
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  detail::format_into(os, args...);
  return os.str();
}

}  // namespace vislang

// VL_CHECK(cond, "op: ", details...) throws vislang::Error with the concatenated message.
#define VL_CHECK(cond, ...)                                  \
  do {                                                       \
    if (!(cond)) throw ::vislang::Error(::vislang::str(__VA_ARGS__)); \
  } while (0)

#define VL_FAIL(...) throw ::vislang::Error(::vislang::str(__VA_ARGS__))
