#!/bin/bash
# Runs two layoutdump binaries on every fixture dump the tests left (target/fixture-dumps)
# in many variants and lists the runs whose stdout, stderr or exit code differ.
# usage: bench/same-output.sh OLD_BINARY NEW_BINARY OUTDIR   (from the repository root)
set -u
old=$1; new=$2; out=$3
variants=(
  "" "--locals --all-frames" "--format json" "--format yaml"
  "--group" "--group --format json" "--group --format yaml" "--graph dot"
  "--state idle --format json" "--match sleep|mutex|fd"
  "--limit-steps 20000" "--format json --limit-steps 20000"
  "--limit-items 5 --format yaml" "--limit-depth 3"
  "--task 29" "--task 1 --task 31 --format json" "--task 2 --task 30 --group"
  "--task 3 --format yaml" "--task 1 --task 2 --group --format json" "--task 99999"
  "--task 5 --locals"
  "--state idle" "--state idle --format yaml" "--match sleep|lock --group"
  "--match sleep|lock --group --format json" "--match sleep|lock --group --format yaml"
  "--match join|recv --graph dot" "--state idle --graph dot --task 1 --task 3 --task 5"
  "--match nothing-matches-this --format yaml" "--match nothing-matches-this"
  "--state running --state scheduled --locals"
)
runs=0
for bin in old new; do
  b=${!bin}
  mkdir -p "$out/$bin"
  for d in target/fixture-dumps/{debug,release,crash}/*; do
    base=$(echo "$d" | sed 's|target/fixture-dumps/||; s|/|-|g')
    for i in "${!variants[@]}"; do
      # Word-split the variant, but keep a --match expression whole.
      read -ra args <<< "${variants[$i]}"
      "$b" run "$d" "${args[@]}" > "$out/$bin/$base.$i.out" 2> "$out/$bin/$base.$i.err"
      echo $? > "$out/$bin/$base.$i.rc"
      runs=$((runs + 1))
    done
  done
done
echo "runs: $((runs / 2)) per binary"
diff -rq "$out/old" "$out/new" && echo "all identical"
