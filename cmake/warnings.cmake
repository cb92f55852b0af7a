# vigil_set_warnings(target): the project's warning policy, applied per target.
function(vigil_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers
    -Wmissing-declarations)
  if(VIGIL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  # Clang checks the thread-safety annotations (core/include/vigil/core/mutex.h) in every
  # build it makes (the fuzz preset builds every library with it): a violation is an error.
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety -Werror=thread-safety)
  endif()
endfunction()

if(VIGIL_DCHECKS)
  add_compile_definitions(VIGIL_DCHECKS=1)
endif()

if(VIGIL_SANITIZE)
  add_compile_options(-fsanitize=${VIGIL_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${VIGIL_SANITIZE})
  if(VIGIL_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # libstdc++'s atomic_thread_fence (used by Boost.Asio) is invisible to TSan; GCC says so
    # for every file that includes it. The fences order nothing TSan would otherwise miss in
    # vigil's own code (its synchronisation is mutexes and atomics with orders).
    add_compile_options(-Wno-tsan)
  endif()
endif()

if(VIGIL_MARCH)
  separate_arguments(vigil_march_flags UNIX_COMMAND "${VIGIL_MARCH}")
  add_compile_options(${vigil_march_flags})
endif()
