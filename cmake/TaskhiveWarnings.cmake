# taskhive_warnings(TARGET): the project's warning set, errors when TASKHIVE_WERROR is on (CI).
function(taskhive_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor)
  if(TASKHIVE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
