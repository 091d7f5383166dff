# Finds gRPC C++ and its protoc plugin. Provides the target gRPC::grpc++ (and
# gRPC::grpc++_reflection), Abseil's targets (absl::synchronization: gRPC's mutexes), and the
# variable KILN_GRPC_CPP_PLUGIN (path of grpc_cpp_plugin).
#
# gRPC's CMake config comes first. Debian's has broken before (grpc/grpc#29977, #38838: its
# targets name files that are not installed, which stops the configure with a fatal error that
# no caller can catch), so when it is missing, or with -DKILN_GRPC_PKGCONFIG=ON, the same
# targets are made from `pkg-config grpc++` instead.

# libabsl-dev comes with libgrpc++-dev.
find_package(absl CONFIG REQUIRED)

option(KILN_GRPC_PKGCONFIG "Find gRPC through pkg-config instead of its CMake config" OFF)

if(NOT KILN_GRPC_PKGCONFIG)
  find_package(gRPC CONFIG QUIET)
endif()

if(gRPC_FOUND)
  message(STATUS "kiln: gRPC ${gRPC_VERSION} from its CMake config (${gRPC_DIR})")
  if(TARGET gRPC::grpc_cpp_plugin)
    get_target_property(kiln_grpc_plugin_location gRPC::grpc_cpp_plugin LOCATION)
  endif()
else()
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(KILN_GRPCPP REQUIRED IMPORTED_TARGET GLOBAL grpc++)
  add_library(gRPC::grpc++ ALIAS PkgConfig::KILN_GRPCPP)
  pkg_check_modules(KILN_GRPCPP_REFLECTION IMPORTED_TARGET GLOBAL grpc++_reflection)
  if(KILN_GRPCPP_REFLECTION_FOUND)
    add_library(gRPC::grpc++_reflection ALIAS PkgConfig::KILN_GRPCPP_REFLECTION)
  else()
    # Debian's libgrpc++-dev has the library but no .pc file for it.
    find_library(KILN_GRPCPP_REFLECTION_LIBRARY grpc++_reflection REQUIRED)
    add_library(kiln_grpcpp_reflection INTERFACE)
    target_link_libraries(kiln_grpcpp_reflection INTERFACE "${KILN_GRPCPP_REFLECTION_LIBRARY}"
                                                           PkgConfig::KILN_GRPCPP)
    add_library(gRPC::grpc++_reflection ALIAS kiln_grpcpp_reflection)
  endif()
  message(STATUS "kiln: gRPC ${KILN_GRPCPP_VERSION} from pkg-config")
endif()

if(kiln_grpc_plugin_location AND EXISTS "${kiln_grpc_plugin_location}")
  set(KILN_GRPC_CPP_PLUGIN "${kiln_grpc_plugin_location}")
else()
  find_program(KILN_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
endif()
