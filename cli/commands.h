// cli/commands.h — one entry point per `vislang` subcommand (argv[0] is the subcommand name).
#pragma once

int run_version(int argc, char** argv);
int run_bench_ops(int argc, char** argv);

// CLIP applications (cli/clip_commands.cpp, cli/bench_clip.cpp).
int run_tokenize(int argc, char** argv);
int run_embed(int argc, char** argv);
int run_zero_shot(int argc, char** argv);
int run_similarity(int argc, char** argv);
int run_bench_clip(int argc, char** argv);  // argv[0] is "clip"
int run_bench_blip2(int argc, char** argv);  // argv[0] is "blip2" (cli/bench_blip2.cpp)

// Training (cli/train_command.cpp).
int run_train(int argc, char** argv);
int run_toy_eval(int argc, char** argv);

// Image search engine (cli/search_commands.cpp, cli/serve.cpp, cli/bench_search.cpp).
int run_index(int argc, char** argv);         // argv[0] is "index"; build | add | prune | info
int run_search(int argc, char** argv);
int run_recommend(int argc, char** argv);
int run_serve(int argc, char** argv);
int run_demo(int argc, char** argv);
int run_bench_search(int argc, char** argv);  // argv[0] is "search"
