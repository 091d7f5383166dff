// kiln_npz_copy IN.npz OUT.npz [--deflate]: reads IN with graph::read_npz, prints each array's
// name and type, and writes them all to OUT with graph::write_npz (stored, or deflated). The
// numpy interop test (run_module_py_test.py) checks files both ways with it.

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "compiler_core/graph/npz.h"

int main(int argc, char** argv) {
  using namespace kiln::graph;
  bool deflate = argc == 4 && std::strcmp(argv[3], "--deflate") == 0;
  if (argc != 3 && !deflate) {
    std::fprintf(stderr, "usage: kiln_npz_copy IN.npz OUT.npz [--deflate]\n");
    return 2;
  }
  auto arrays = read_npz(argv[1]);
  if (!arrays.is_ok()) {
    std::fprintf(stderr, "error: %s\n", arrays.status().message().c_str());
    return 2;
  }
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [name, tensor] : *arrays) {
    std::printf("%s %s\n", name.c_str(), to_string(tensor.info).c_str());
    out.emplace_back(name, std::move(tensor));
  }
  kiln::Status written =
      write_npz(argv[2], out, deflate ? NpzCompression::kDeflated : NpzCompression::kStored);
  if (!written.is_ok()) {
    std::fprintf(stderr, "error: %s\n", written.message().c_str());
    return 1;
  }
  return 0;
}
