# The distributed fit against one process: amq_mpi_fit --single, then under mpirun with 2 and 4
# ranks (more ranks than cores is allowed), must write byte-identical model files. Run by CTest
# with FIT (the program), MPIEXEC (mpirun), WORK (scratch folder), SHARED (data and weights)
# and IMAGES (ON when the program reads images).
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

function(run_fit)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "exit ${code}: ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

function(expect_same_file reference candidate)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${reference} ${candidate}
                  RESULT_VARIABLE differ)
  if(NOT differ EQUAL 0)
    message(FATAL_ERROR "${candidate} differs from the one-process model ${reference}")
  endif()
endfunction()

set(mpirun ${MPIEXEC} --oversubscribe)
set(synthetic --synthetic 24 --width 20 --height 16 --depth 48 -G 128 --bucket-width 0.5)
set(case_names classic-paper split-block-fpr classic-fpr-probes)
set(classic-paper_args ${synthetic} --seed 5 --filter classic --filter-bits 4000000)
set(split-block-fpr_args ${synthetic} --seed 5 --filter split-block --target-fpr 1e-4)
set(classic-fpr-probes_args ${synthetic} --seed 5 --filter classic --target-fpr 1e-3 --probes 4)
if(IMAGES AND EXISTS ${SHARED}/data/mvtec_ad/bottle/train/good
   AND EXISTS ${SHARED}/models/mobilenet_v2_1.0_224.safetensors)
  list(APPEND case_names bottle)
  set(bottle_args --data ${SHARED}/data/mvtec_ad/bottle
      --weights ${SHARED}/models/mobilenet_v2_1.0_224.safetensors --limit 6 --threads 1
      -G 256 --bucket-width 2.0 --filter classic --filter-bits 8000000)
  set(bottle_ranks 2)
else()
  message(STATUS "no bottle images, MobileNetV2 weights or image support: synthetic maps only")
endif()

foreach(name IN LISTS case_names)
  set(reference ${WORK}/${name}-single.amq)
  run_fit(${FIT} ${${name}_args} --single --out ${reference})
  set(rank_counts 2 4)
  if(DEFINED ${name}_ranks)
    set(rank_counts ${${name}_ranks})
  endif()
  foreach(np IN LISTS rank_counts)
    run_fit(${mpirun} -np ${np} ${FIT} ${${name}_args} --out ${WORK}/${name}-np${np}.amq)
    expect_same_file(${reference} ${WORK}/${name}-np${np}.amq)
  endforeach()
endforeach()

# The comparison can fail: another seed gives another model.
run_fit(${mpirun} -np 2 ${FIT} ${synthetic} --seed 6 --filter classic --filter-bits 4000000
        --out ${WORK}/other-seed.amq)
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${WORK}/classic-paper-single.amq
                ${WORK}/other-seed.amq RESULT_VARIABLE differ)
if(differ EQUAL 0)
  message(FATAL_ERROR "models of seeds 5 and 6 are identical")
endif()

# A rank's error stops the run with a message and leaves no model file.
execute_process(COMMAND ${mpirun} -np 2 ${FIT} ${synthetic} --filter classic --filter-bits 0
                        --out ${WORK}/refused.amq
                RESULT_VARIABLE code ERROR_VARIABLE err OUTPUT_QUIET)
if(code EQUAL 0 OR NOT err MATCHES "filter_bits M > 0" OR EXISTS ${WORK}/refused.amq)
  message(FATAL_ERROR "M = 0 was not refused cleanly (exit ${code}):\n${err}")
endif()
