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
