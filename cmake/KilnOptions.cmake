# Build options and the compile options every kiln-owned target gets.

option(KILN_WERROR "Treat compiler warnings in kiln's own targets as errors" ON)

# Adds kiln's warning flags to `target` (PRIVATE: they never reach consumers or generated code).
# -Wno-missing-field-initializers: GCC 12 warns on designated initializers that leave fields at
# their defaults (`TimingOptions{.repeat = 5}`), which is how kiln's options structs are meant
# to be used. -Wno-restrict on GCC before 13: GCC 12.2 (Debian 12) reports false overlaps inside
# libstdc++'s std::string operator+ at -O2 and above (GCC bug 105329).
function(kiln_set_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter
                                           -Wno-missing-field-initializers)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(KILN_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Sanitizers for every target of the build (generated code and tests included): a list for
# -fsanitize=, e.g. "address,undefined" or "thread". scripts/sanitize.sh configures a build
# folder of its own with it. Reports stop the program (no recovery), so a test that triggers
# one fails.
set(KILN_SANITIZE "" CACHE STRING "Sanitizers for every target, e.g. address,undefined or thread")
if(KILN_SANITIZE)
  add_compile_options(-fsanitize=${KILN_SANITIZE} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${KILN_SANITIZE})
endif()

# libFuzzer targets (tests/fuzz/): every target of the build is compiled with the fuzzer's
# coverage instrumentation, AddressSanitizer and UndefinedBehaviorSanitizer, and the fuzz targets
# link libFuzzer's main. Clang only (Debian's clang-16 with libclang-rt-16-dev and
# libfuzzer-16-dev): configure with CC=clang-16 CXX=clang++-16 in a folder of its own, as
# scripts/test.sh does in build-fuzz/. Without it, the fuzz targets still build with a main that
# replays their seed corpora and regression inputs (tests/fuzz/replay_main.cc).
option(KILN_FUZZ "Build the libFuzzer targets in tests/fuzz/ (clang, with ASan and UBSan)" OFF)
if(KILN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "kiln: KILN_FUZZ needs clang (configure with CC=clang-16 CXX=clang++-16)")
  endif()
  if(KILN_SANITIZE)
    message(FATAL_ERROR "kiln: KILN_FUZZ brings its own sanitizers; leave KILN_SANITIZE empty")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()
