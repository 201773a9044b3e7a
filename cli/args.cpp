// cli/args.cpp — the option table parser of cli/args.h.
#include "cli/args.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace vislang::cli {

std::string Parsed::get(const std::string& name, const std::string& def) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return def;
  return it->second.back();
}

std::vector<std::string> Parsed::list(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

long long Parsed::get_int(const std::string& name, long long def, long long lo, long long hi) const {
  if (!has(name)) return def;
  const std::string v = get(name);
  errno = 0;
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE)
    throw UsageError(str(name, " expects an integer, got '", v, "'"));
  if (n < lo || n > hi) {
    if (hi == (1LL << 62)) throw UsageError(str(name, " must be >= ", lo, ", got ", v));
    throw UsageError(str(name, " must be in [", lo, ", ", hi, "], got ", v));
  }
  return n;
}

ArgParser::ArgParser(std::string command, std::string synopsis, std::string description)
    : command_(std::move(command)), synopsis_(std::move(synopsis)), description_(std::move(description)) {}

ArgParser& ArgParser::flag(const std::string& name, const std::string& help, const std::string& group) {
  specs_.push_back({name, "", OptKind::FLAG, "", help, group});
  return *this;
}
ArgParser& ArgParser::value(const std::string& name, const std::string& meta, const std::string& help,
                            const std::string& group) {
  specs_.push_back({name, "", OptKind::VALUE, meta, help, group});
  return *this;
}
ArgParser& ArgParser::list(const std::string& name, const std::string& meta, const std::string& help,
                           const std::string& group) {
  specs_.push_back({name, "", OptKind::LIST, meta, help, group});
  return *this;
}
ArgParser& ArgParser::alias(const std::string& a) {
  if (!specs_.empty()) specs_.back().alias = a;
  return *this;
}
ArgParser& ArgParser::positionals(const std::string& meta, const std::string& help) {
  accepts_positionals_ = true;
  positional_meta_ = meta;
  positional_help_ = help;
  return *this;
}
ArgParser& ArgParser::epilog(const std::string& text) {
  epilog_ = text;
  return *this;
}

const OptSpec* ArgParser::find(const std::string& name) const {
  for (const OptSpec& s : specs_)
    if (s.name == name || (!s.alias.empty() && s.alias == name)) return &s;
  return nullptr;
}

Parsed ArgParser::parse(int argc, char** argv) const {
  Parsed out;
  bool only_positionals = false;
  auto add_positional = [&](const std::string& a) {
    if (!accepts_positionals_)
      throw UsageError(str("unexpected argument '", a, "' (this command takes no positional arguments)"));
    out.positionals_.push_back(a);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (only_positionals || a.size() < 2 || a[0] != '-') {
      add_positional(a);
      continue;
    }
    if (a == "--") {
      only_positionals = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      out.help = true;
      continue;
    }
    std::string name = a, inline_value;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0) {
      size_t eq = a.find('=');
      if (eq != std::string::npos) {
        name = a.substr(0, eq);
        inline_value = a.substr(eq + 1);
        has_inline = true;
      }
    }
    const OptSpec* s = find(name);
    if (!s) throw UsageError(str("unknown option '", name, "'"));
    std::vector<std::string>& vals = out.values_[s->name];
    switch (s->kind) {
      case OptKind::FLAG:
        if (has_inline) throw UsageError(str("option ", s->name, " takes no value (got '", a, "')"));
        break;
      case OptKind::VALUE:
        if (has_inline) {
          vals.push_back(inline_value);
        } else {
          if (i + 1 >= argc) throw UsageError(str("option ", s->name, " needs a value (", s->meta, ")"));
          vals.push_back(argv[++i]);
        }
        break;
      case OptKind::LIST: {
        size_t before = vals.size();
        if (has_inline) vals.push_back(inline_value);
        while (i + 1 < argc) {
          const std::string next = argv[i + 1];
          if (next.size() >= 2 && next[0] == '-') break;
          vals.push_back(next);
          ++i;
        }
        if (vals.size() == before) throw UsageError(str("option ", s->name, " needs at least one value (", s->meta, ")"));
        break;
      }
    }
  }
  return out;
}

void ArgParser::print_usage(std::ostream& os) const { os << "usage: vislang " << command_ << " " << synopsis_ << "\n"; }

void ArgParser::print_help(std::ostream& os) const {
  print_usage(os);
  if (!description_.empty()) os << "\n" << description_ << "\n";
  std::vector<std::string> groups;
  for (const OptSpec& s : specs_)
    if (std::find(groups.begin(), groups.end(), s.group) == groups.end()) groups.push_back(s.group);
  auto left = [](const OptSpec& s) {
    std::string l = s.alias.empty() ? s.name : s.alias + ", " + s.name;
    if (s.kind == OptKind::VALUE) l += " " + s.meta;
    if (s.kind == OptKind::LIST) l += " " + s.meta + "...";
    return l;
  };
  size_t width = 0;
  for (const OptSpec& s : specs_) width = std::max(width, left(s).size());
  width = std::min<size_t>(width, 28);
  auto print_entry = [&](const std::string& l, const std::string& help) {
    os << "  " << l;
    size_t pad = l.size() < width ? width - l.size() : 0;
    if (l.size() > width) {
      os << "\n  " << std::string(width, ' ');
    } else {
      os << std::string(pad, ' ');
    }
    os << "  ";
    for (char c : help) {
      os << c;
      if (c == '\n') os << "  " << std::string(width, ' ') << "  ";
    }
    os << "\n";
  };
  if (accepts_positionals_) {
    os << "\narguments:\n";
    print_entry(positional_meta_, positional_help_);
  }
  for (const std::string& g : groups) {
    os << "\n" << (g.empty() ? "options" : g) << ":\n";
    for (const OptSpec& s : specs_)
      if (s.group == g) print_entry(left(s), s.help);
  }
  os << "  " << std::string("-h, --help") << std::string(width > 10 ? width - 10 : 0, ' ') << "  this help\n";
  if (!epilog_.empty()) os << "\n" << epilog_ << "\n";
}

}  // namespace vislang::cli
