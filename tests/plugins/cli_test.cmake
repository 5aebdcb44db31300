# ctest driver for `taskhive plugins`: runs the CLI against the corpus and checks its JSON, its text output,
# TASKHIVE_PLUGIN_PATH, the probe (the default) and --no-probe, and its exit codes. Needs -DTASKHIVE=<binary>
# -DCORPUS_DIR=<dir> -DCRASH_CORPUS_DIR=<dir>.

cmake_minimum_required(VERSION 3.25)  # quoted strings in if() are never variable names (CMP0054)

# expect(CONDITION MESSAGE): CONDITION is the text of an if() condition, evaluated as written.
function(expect condition message)
  cmake_language(EVAL CODE "if(${condition})\n set(ok TRUE)\nelse()\n set(ok FALSE)\nendif()")
  if(NOT ok)
    message(FATAL_ERROR "${message}")
  endif()
endfunction()

# Work on a copy with fixed permissions: the loader refuses group-writable files, which a build under umask 002
# would make.
set(copy "${CMAKE_CURRENT_BINARY_DIR}/cli-corpus")
file(REMOVE_RECURSE "${copy}")
file(GLOB plugins "${CORPUS_DIR}/*.so")
file(COPY ${plugins} DESTINATION "${copy}" FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
     GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
file(CHMOD "${copy}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
     WORLD_EXECUTE)
set(CORPUS_DIR "${copy}")

# The probe cache (on by default) goes to a private directory, never the real ~/.cache.
set(cache_home "${CMAKE_CURRENT_BINARY_DIR}/cli-cache-home")
file(REMOVE_RECURSE "${cache_home}")
set(ENV{XDG_CACHE_HOME} "${cache_home}")

# --json: one object per candidate with path, status, name, version, kinds and reason. Probed: the good one is
# "available", not loaded. (--probe-timeout 60000: any value up to an hour is taken.)
execute_process(COMMAND "${TASKHIVE}" plugins --plugins "${CORPUS_DIR}" --json --probe-timeout 60000
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect("rc EQUAL 0" "taskhive plugins --json exited ${rc} (refusals must not fail the command): ${err}")
string(JSON count LENGTH "${out}")
expect("count EQUAL 9" "expected 9 candidates in ${CORPUS_DIR}, got ${count}:\n${out}")
set(loaded_count 0)
math(EXPR last "${count} - 1")
foreach(i RANGE ${last})
  foreach(key path status name version kinds reason sha256)
    string(JSON type ERROR_VARIABLE missing TYPE "${out}" ${i} ${key})
    expect("missing STREQUAL NOTFOUND" "object ${i} has no \"${key}\": ${missing}")
  endforeach()
  string(JSON path GET "${out}" ${i} path)
  string(JSON status GET "${out}" ${i} status)
  string(JSON reason GET "${out}" ${i} reason)
  cmake_path(GET path FILENAME file)
  if(file STREQUAL "good.so")
    expect("status STREQUAL \"available\"" "good.so: status ${status}, reason ${reason}")
    string(JSON name GET "${out}" ${i} name)
    string(JSON kind GET "${out}" ${i} kinds 0 name)
    string(JSON kind_type GET "${out}" ${i} kinds 0 type)
    expect("name STREQUAL \"corpus_good\" AND kind STREQUAL \"echo\" AND kind_type STREQUAL \"transform\""
           "good.so: unexpected descriptor in ${out}")
    math(EXPR loaded_count "${loaded_count} + 1")
  else()
    expect("status STREQUAL \"refused\"" "${file}: expected refused, got ${status}")
    expect("NOT reason STREQUAL \"\"" "${file}: refused without a reason")
  endif()
  if(file STREQUAL "entry_null.so")
    expect("reason STREQUAL \"taskhive_plugin_entry returned NULL\"" "entry_null.so: reason ${reason}")
  elseif(file STREQUAL "zz_duplicate_name.so")
    expect("reason MATCHES \"^duplicate plugin name .corpus_good.: already available from .*/good.so$\""
           "zz_duplicate_name.so: reason ${reason}")
  endif()
endforeach()
expect("loaded_count EQUAL 1" "expected good.so among the candidates")

# Text, with the directory from TASKHIVE_PLUGIN_PATH: one line per candidate.
execute_process(COMMAND ${CMAKE_COMMAND} -E env "TASKHIVE_PLUGIN_PATH=${CORPUS_DIR}" "${TASKHIVE}" plugins
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect("rc EQUAL 0" "taskhive plugins with TASKHIVE_PLUGIN_PATH exited ${rc}: ${err}")
string(REGEX MATCHALL "\n" lines "${out}")  # count newlines: reasons may hold ';', CMake's list separator
list(LENGTH lines count)
expect("count EQUAL 9" "expected 9 lines, got ${count}:\n${out}")
expect("out MATCHES \"available +corpus_good +2.1.0-rc.1\\\\+build.5 +[^\n]*/good.so\""
       "no loaded line for good.so in:\n${out}")
expect("out MATCHES \"refused [^\n]*/wrong_abi.so  \\\\(ABI version mismatch: expected 1, found 99\""
       "no refused line for wrong_abi.so in:\n${out}")

# --no-probe loads in this process, as before the probe.
execute_process(COMMAND "${TASKHIVE}" plugins --plugins "${CORPUS_DIR}" --no-probe
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect("rc EQUAL 0" "taskhive plugins --no-probe exited ${rc}: ${err}")
expect("out MATCHES \"loaded +corpus_good +2.1.0-rc.1\\\\+build.5 +[^\n]*/good.so\""
       "no loaded line for good.so with --no-probe in:\n${out}")
expect("out MATCHES \"refused [^\n]*/zz_duplicate_name.so  \\\\(duplicate plugin name .corpus_good.: already loaded from\""
       "no duplicate line with --no-probe in:\n${out}")

# Plugins that crash, exit or hang while loading: refused by the probe, and the command lives on, quietly
# (nothing of the children's on stderr).
set(crash "${CMAKE_CURRENT_BINARY_DIR}/cli-crash-corpus")
file(REMOVE_RECURSE "${crash}")
file(GLOB plugins "${CRASH_CORPUS_DIR}/*.so" "${CORPUS_DIR}/good.so")
file(COPY ${plugins} DESTINATION "${crash}" FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
     GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
file(CHMOD "${crash}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
     WORLD_EXECUTE)
execute_process(COMMAND "${TASKHIVE}" plugins --plugins "${crash}" --probe-timeout 300
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect("rc EQUAL 0" "taskhive plugins on crashing plugins exited ${rc}: ${err}")
expect("err STREQUAL \"\"" "unexpected stderr: ${err}")
foreach(line
    "refused [^\n]*/ctor_abort.so  \\\\(crashed during probe: signal 6 \\\\(Aborted\\\\)\\\\)"
    "refused [^\n]*/ctor_segv.so  \\\\(crashed during probe: signal 11 \\\\(Segmentation fault\\\\)\\\\)"
    "refused [^\n]*/entry_crash.so  \\\\(crashed during probe: signal 11 \\\\(Segmentation fault\\\\)\\\\)"
    "refused [^\n]*/ctor_exit.so  \\\\(exited during probe with status 3\\\\)"
    "refused [^\n]*/ctor_hang.so  \\\\(probe timed out after 300 ms\\\\)"
    "available +corpus_good [^\n]*/good.so")
  expect("out MATCHES \"${line}\"" "no line matching ${line} in:\n${out}")
endforeach()

# The probe cache: written by the runs above; a rerun without a probe executable still finds every result
# (the crashes included), while --no-cache has to probe and cannot.
expect("EXISTS \"${cache_home}/taskhive/probe-cache.json\"" "no probe cache in ${cache_home}/taskhive")
set(ENV{TASKHIVE_PROBE} "${cache_home}/no-such-probe")
execute_process(COMMAND "${TASKHIVE}" plugins --plugins "${crash}" --probe-timeout 300
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect("rc EQUAL 0" "taskhive plugins from the cache exited ${rc}: ${err}")
expect("out MATCHES \"refused [^\n]*/ctor_segv.so  \\\\(crashed during probe: signal 11\"" "not cached: ${out}")
expect("out MATCHES \"available +corpus_good [^\n]*/good.so\"" "good.so not cached: ${out}")
execute_process(COMMAND "${TASKHIVE}" plugins --plugins "${crash}" --probe-timeout 300 --no-cache
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect("rc EQUAL 0" "taskhive plugins --no-cache exited ${rc}: ${err}")
expect("out MATCHES \"refused [^\n]*/good.so  \\\\(cannot start the plugin probe\"" "--no-cache used the cache: ${out}")
unset(ENV{TASKHIVE_PROBE})

# A file name that is not UTF-8 is listed (its odd bytes as U+FFFD in --json), not a failure; the probe cache
# is written (the --json run above would have failed on it before).
set(odd "${CMAKE_CURRENT_BINARY_DIR}/cli-odd-name")
file(REMOVE_RECURSE "${odd}")
file(MAKE_DIRECTORY "${odd}")
file(CHMOD "${odd}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
     WORLD_EXECUTE)
execute_process(COMMAND sh -c "cp \"$0\" \"$1/odd-$(printf '\\377')-name.so\"" "${CORPUS_DIR}/good.so" "${odd}"
  RESULT_VARIABLE rc)
expect("rc EQUAL 0" "cannot make a file with a non-UTF-8 name in ${odd}")
foreach(args "--json" "")
  execute_process(COMMAND "${TASKHIVE}" plugins --plugins "${odd}" ${args}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  expect("rc EQUAL 0" "a non-UTF-8 file name: taskhive plugins ${args} exited ${rc}: ${err}")
endforeach()
execute_process(COMMAND "${TASKHIVE}" plugins --plugins "${odd}" --json
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(JSON status GET "${out}" 0 status)
expect("status STREQUAL \"available\"" "the plugin with a non-UTF-8 name: ${out}")

# A directory that cannot be listed (mode 0311): exit 2 and say why. Root lists any directory, so as root
# this runs as nobody through runuser, where nobody can reach the build tree; otherwise it is skipped.
set(unlisted "${CMAKE_CURRENT_BINARY_DIR}/cli-unlisted")
file(REMOVE_RECURSE "${unlisted}")
file(MAKE_DIRECTORY "${unlisted}/plugins")
file(CHMOD "${unlisted}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
     WORLD_EXECUTE)
file(CHMOD "${unlisted}/plugins" PERMISSIONS OWNER_WRITE OWNER_EXECUTE GROUP_EXECUTE WORLD_EXECUTE)
execute_process(COMMAND id -u OUTPUT_VARIABLE uid OUTPUT_STRIP_TRAILING_WHITESPACE)
set(as_user "")
set(can_run TRUE)
if(uid EQUAL 0)
  find_program(RUNUSER runuser)
  set(as_user "${RUNUSER}" -u nobody --)
  if(NOT RUNUSER)
    set(can_run FALSE)
  else()
    execute_process(COMMAND ${as_user} "${TASKHIVE}" --version RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    execute_process(COMMAND ${as_user} test -x "${unlisted}/plugins" RESULT_VARIABLE reach)
    if(NOT rc EQUAL 0 OR NOT reach EQUAL 0)
      set(can_run FALSE)
    endif()
  endif()
endif()
if(can_run)
  execute_process(COMMAND ${as_user} "${TASKHIVE}" plugins --plugins "${unlisted}/plugins" --no-cache
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  expect("rc EQUAL 2" "an unlistable directory: expected exit 2, got ${rc}: ${out}${err}")
  expect("err MATCHES \"plugin directory .*/cli-unlisted/plugins cannot be listed: Permission denied\""
         "unclear message: ${err}")
else()
  message(STATUS "skipped the unlistable-directory case: cannot run the CLI as an unprivileged user here")
endif()

# A directory that does not exist: exit 2 and say which.
execute_process(COMMAND "${TASKHIVE}" plugins --plugins "${CORPUS_DIR}/does-not-exist" --json
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
expect("rc EQUAL 2" "a missing directory: expected exit 2, got ${rc}")
expect("err MATCHES \"plugin directory .*/does-not-exist does not exist\"" "unclear message: ${err}")
expect("out STREQUAL \"\"" "nothing on stdout when failing, got: ${out}")
