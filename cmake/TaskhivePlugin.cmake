# taskhive_add_plugin(TARGET SOURCES...): a taskhive plugin built the way the loader wants it: a MODULE named
# TARGET.so (no "lib" prefix), every symbol hidden but the entry point that TASKHIVE_PLUGIN exports, and
# -fno-gnu-unique, so that dlclose really unloads it (GCC marks inline statics STB_GNU_UNIQUE, which pins a
# library in memory for good: it could never unload or hot-reload). The plugin API is header-only, so a
# plugin gets taskhive's include directory and does not link libtaskhive.
#
# Installed with the package, for plugin authors:
#   find_package(taskhive 0.1 REQUIRED)
#   taskhive_add_plugin(upper upper.cpp)          # -> upper.so, ready for `taskhive plugins --plugins DIR`
function(taskhive_add_plugin target)
  add_library(${target} MODULE ${ARGN})
  target_include_directories(${target} PRIVATE
    $<TARGET_PROPERTY:taskhive::taskhive,INTERFACE_INCLUDE_DIRECTORIES>)
  target_compile_features(${target} PRIVATE cxx_std_20)
  target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
  set_target_properties(${target} PROPERTIES PREFIX "" CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
endfunction()
