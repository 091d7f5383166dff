# Toolchain file: cross-compiles kiln for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu,
# against a sysroot of Debian 12's arm64 packages (scripts/cross_build_arm64.sh makes one with
# mmdebstrap and passes it here).
#
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DKILN_ARM64_SYSROOT=/path/to/sysroot
#
# Libraries, headers, CMake packages and pkg-config files come from the sysroot only; programs
# that run during the build (protoc, grpc_cpp_plugin, pkg-config, ccache) come from the host.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# The sysroot: -DKILN_ARM64_SYSROOT, else $KILN_ARM64_SYSROOT, else build-arm64/sysroot in the
# source tree. A cache entry, so that re-running CMake from the build tool (without the
# environment) keeps it; try_compile projects get it through the platform variables.
if(NOT KILN_ARM64_SYSROOT)
  if(DEFINED ENV{KILN_ARM64_SYSROOT})
    set(KILN_ARM64_SYSROOT "$ENV{KILN_ARM64_SYSROOT}")
  else()
    set(KILN_ARM64_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../build-arm64/sysroot")
  endif()
endif()
get_filename_component(KILN_ARM64_SYSROOT "${KILN_ARM64_SYSROOT}" ABSOLUTE)
set(KILN_ARM64_SYSROOT "${KILN_ARM64_SYSROOT}" CACHE PATH "Sysroot of Debian arm64 packages")
if(NOT EXISTS "${KILN_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
  message(FATAL_ERROR "kiln: no arm64 sysroot at ${KILN_ARM64_SYSROOT} "
                      "(scripts/cross_build_arm64.sh makes one)")
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES KILN_ARM64_SYSROOT)

set(CMAKE_SYSROOT "${KILN_ARM64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Shared libraries pull in others (libLLVM-16 needs libz, libtinfo, libffi, ...): the linker
# looks for those in the sysroot's library directories.
set(kiln_arm64_rpath_link
    "-Wl,-rpath-link,${KILN_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu"
    "-Wl,-rpath-link,${KILN_ARM64_SYSROOT}/lib/aarch64-linux-gnu")
list(JOIN kiln_arm64_rpath_link " " kiln_arm64_rpath_link)
set(CMAKE_EXE_LINKER_FLAGS_INIT "${kiln_arm64_rpath_link}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${kiln_arm64_rpath_link}")

# pkg-config (the host's) reads the sysroot's .pc files and prefixes their paths with it.
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_LIBDIR}
    "${KILN_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${KILN_ARM64_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${KILN_ARM64_SYSROOT}")

# Code generators run on the host: Debian's amd64 protoc and grpc_cpp_plugin (the same versions
# as the sysroot's arm64 libraries). gRPC's CMake config would insist on the sysroot's arm64
# plugins (its targets name every grpc_*_plugin), so gRPC is found through pkg-config instead
# (cmake/KilnGrpc.cmake).
set(Protobuf_PROTOC_EXECUTABLE /usr/bin/protoc CACHE FILEPATH "Host protoc")
set(KILN_GRPC_CPP_PLUGIN /usr/bin/grpc_cpp_plugin CACHE FILEPATH "Host grpc_cpp_plugin")
set(KILN_GRPC_PKGCONFIG ON CACHE BOOL "Find gRPC through pkg-config instead of its CMake config")
