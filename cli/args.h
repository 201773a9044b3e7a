// cli/args.h — option parsing for the `vislang` subcommands that load models (tokenize, embed,
// zero-shot, similarity, bench clip).
//
// Each command declares its options once (name, kind, metavariable, help line); the same table
// drives parsing and the `--help` text, so the two cannot drift apart. Three kinds of options:
//   FLAG   --normalize                    present or not
//   VALUE  --batch 32 | --batch=32        one value; given twice, the last wins
//   LIST   --image a.png b.png | --image=a.png --image b.png
//          every following argument up to the next one that starts with '-' (a lone "-" is a value);
//          a value that itself starts with '-' is passed as --text=-x.
// Arguments that are not options are positionals (only commands that declare them accept them);
// after "--" everything is positional. A user mistake (unknown option, missing value, an integer
// that is not one) raises UsageError, which the commands turn into exit status 2 and a message
// that names the option; runtime failures stay vislang::Error (exit status 1, from cli/main.cpp).
#pragma once
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "core/error.h"

namespace vislang::cli {

// A mistake in the command line: exit status 2, with the command's usage line.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(what) {}
};

enum class OptKind { FLAG, VALUE, LIST };

struct OptSpec {
  std::string name;   // "--batch"
  std::string alias;  // "-b" or ""
  OptKind kind = OptKind::FLAG;
  std::string meta;   // "N", "PATH"
  std::string help;   // one line (may contain '\n' for continuation lines)
  std::string group;  // heading in --help ("inputs", "output", "model", ...)
};

class Parsed {
 public:
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  // The last value of a VALUE option, or `def` when absent.
  std::string get(const std::string& name, const std::string& def = "") const;
  // Every value of a LIST option (or of a repeated VALUE option), in command-line order.
  std::vector<std::string> list(const std::string& name) const;
  // An integer option in [lo, hi]; UsageError naming the option otherwise.
  long long get_int(const std::string& name, long long def, long long lo, long long hi) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  bool help = false;

 private:
  friend class ArgParser;
  std::map<std::string, std::vector<std::string>> values_;  // FLAG: present with no values
  std::vector<std::string> positionals_;
};

class ArgParser {
 public:
  // command: "embed" or "bench clip"; synopsis: the usage line after "vislang <command> ";
  // description: a paragraph printed under it in --help.
  ArgParser(std::string command, std::string synopsis, std::string description);

  ArgParser& flag(const std::string& name, const std::string& help, const std::string& group = "");
  ArgParser& value(const std::string& name, const std::string& meta, const std::string& help,
                   const std::string& group = "");
  ArgParser& list(const std::string& name, const std::string& meta, const std::string& help,
                  const std::string& group = "");
  ArgParser& alias(const std::string& alias);  // for the option declared last
  // Accept positionals, shown as `meta` in the help.
  ArgParser& positionals(const std::string& meta, const std::string& help);
  // Text after the option table (notes, examples).
  ArgParser& epilog(const std::string& text);

  // argv[0] is the (last word of the) command name. -h/--help sets Parsed::help; everything else
  // that is wrong throws UsageError.
  Parsed parse(int argc, char** argv) const;

  const std::string& command() const { return command_; }
  void print_usage(std::ostream& os) const;  // the one-line synopsis
  void print_help(std::ostream& os) const;   // synopsis, description, options by group, epilog

 private:
  const OptSpec* find(const std::string& name) const;
  std::string command_, synopsis_, description_, epilog_;
  std::string positional_meta_, positional_help_;
  bool accepts_positionals_ = false;
  std::vector<OptSpec> specs_;
};

// Runs `body(parsed)` with the conventions of every model command: --help prints the help and
// returns 0; a UsageError prints "vislang <cmd>: <message>" plus the usage line and returns 2.
// Other errors propagate to cli/main.cpp (exit status 1).
template <typename Body>
int run_command(const ArgParser& p, int argc, char** argv, Body body);

}  // namespace vislang::cli

// ---- implementation of the template ------------------------------------------------------------
#include <iostream>

namespace vislang::cli {
template <typename Body>
int run_command(const ArgParser& p, int argc, char** argv, Body body) {
  try {
    Parsed a = p.parse(argc, argv);
    if (a.help) {
      p.print_help(std::cout);
      return 0;
    }
    return body(a);
  } catch (const UsageError& e) {
    std::cerr << "vislang " << p.command() << ": " << e.what() << "\n";
    p.print_usage(std::cerr);
    std::cerr << "Run 'vislang " << p.command() << " --help' for the options.\n";
    return 2;
  }
}
}  // namespace vislang::cli
