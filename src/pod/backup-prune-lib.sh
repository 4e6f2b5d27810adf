#!/bin/bash
# The run selection the prune steps share (backup-prune-s3.sh,
# backup-prune-gcs.sh, backup-prune-azblob.sh source it from the same
# ConfigMap folder): which names are runs, which run was just written, and
# which runs beyond KEEP to remove. Sourced, never run; uses log, KEEP and
# RUN_FILE from the script that sources it, and only bash.
# shellcheck shell=bash

# A run's name: backup.sh's start time in UTC.
RUN_PATTERN='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z$'

# current_run: the name in RUN_FILE, surrounding blanks dropped.
current_run() {
  local name
  if [[ ! -r "$RUN_FILE" ]]; then
    log "cannot read RUN_FILE=$RUN_FILE: backup.sh did not write it (did the backup succeed?); nothing removed"
    exit 1
  fi
  name="$(<"$RUN_FILE")"
  printf '%s\n' "${name//[[:space:]]/}"
}

# plan_prune BASE CURRENT: reads the listing on stdin, one entry a line, and
# keeps the entries BASE<name>/ whose name is a run; sets `prune` to the runs
# to remove (oldest first) and `kept` to the newest KEEP. Exits 1 when
# CURRENT is not among the runs or not among the kept ones.
plan_prune() {
  local base="$1" current="$2" line name i
  # Indexed by the run's time as a number (YYYYMMDDHHMMSS): bash lists the
  # indices of an array in ascending order, which sorts the runs, and one
  # name appearing twice in the listing counts once.
  local -a runs=()
  while IFS= read -r line; do
    [[ "$line" == "$base"*/ ]] || continue
    name="${line#"$base"}"
    name="${name%/}"
    [[ "$name" =~ $RUN_PATTERN ]] || continue
    runs[10#${name//[-TZ]/}]="$name"
  done
  local -a names=("${runs[@]}")
  local found=0
  for name in "${names[@]}"; do
    if [[ "$name" == "$current" ]]; then found=1; fi
  done
  if ((!found)); then
    log "REFUSED: the run just written, '$current' (from $RUN_FILE), is not among the ${#names[@]} runs found under ${base:-/}; nothing removed"
    exit 1
  fi
  prune=()
  kept=("${names[@]}")
  if ((${#names[@]} > KEEP)); then
    prune=("${names[@]:0:${#names[@]}-KEEP}")
    kept=("${names[@]:${#names[@]}-KEEP}")
  fi
  for name in "${prune[@]}"; do
    if [[ "$name" == "$current" ]]; then
      log "REFUSED: the run just written, $current, is not among the newest $KEEP (${kept[*]}): a run is named later than now (clock?); nothing removed"
      exit 1
    fi
  done
  i="${#kept[@]}"
  log "${#names[@]} runs under ${base:-/}; keeping the newest $i (${kept[0]} to ${kept[i - 1]}); removing ${#prune[@]}"
}
