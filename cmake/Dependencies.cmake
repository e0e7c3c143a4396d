# Every third-party dependency, found once. All come from Debian packages that
# scripts/install-deps.sh installs.
find_package(Threads REQUIRED)
find_package(Boost 1.81 EXACT REQUIRED COMPONENTS json)
find_package(spdlog REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(simdjson REQUIRED)
# Howard Hinnant's date/tz over the system tzdata (date::date-tz).
find_package(date REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)
# libpq itself: storage/binary_result reads rows in the binary format.
pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq)

# Debian ships CAF without a CMake package or a .pc file: find it here and wrap
# it in one imported target, engram::caf.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(engram::caf INTERFACE IMPORTED)
set_target_properties(engram::caf PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "${CAF_IO_LIBRARY};${CAF_CORE_LIBRARY};Threads::Threads")

if(ENGRAM_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()

# OpenBLAS (sgemm with run-time CPU dispatch) for the similarity kernel.
# Its own cblas.h (which also declares openblas_set_num_threads), not the
# one the BLAS alternatives point at.
find_library(OPENBLAS_LIBRARY openblas REQUIRED)
find_path(OPENBLAS_INCLUDE_DIR cblas.h
  PATHS /usr/include/x86_64-linux-gnu/openblas-pthread
        /usr/include/aarch64-linux-gnu/openblas-pthread /usr/include/openblas
  NO_DEFAULT_PATH REQUIRED)
add_library(engram::openblas INTERFACE IMPORTED)
set_target_properties(engram::openblas PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${OPENBLAS_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "${OPENBLAS_LIBRARY}")
