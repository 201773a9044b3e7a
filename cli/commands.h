// cli/commands.h — one entry point per `vislang` subcommand (argv[0] is the subcommand name).
#pragma once

int run_version(int argc, char** argv);
int run_bench_ops(int argc, char** argv);
