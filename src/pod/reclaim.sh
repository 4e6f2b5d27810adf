#!/bin/bash
# Reclaim Job (TiKV image, pinned to the node): wipes the directory of a
# retired instance so the directory can hold a new instance. The directory is
# mounted by hostPath at RECLAIM_DIR (the host path is the disk's mount point
# itself). init-dir.sh accepts a directory only when it is empty or its owner
# marker names the pod's own instance, so without this Job a retired
# instance's directory could never be used again.
#
# Refuses, touching nothing, unless:
# - RECLAIM_DIR is a directory (not a symlink);
# - its owner marker .tidb-gitops-owner is a regular file (not a symlink)
#   holding exactly one line, OWNER (as init-dir.sh writes it). A marker
#   naming anything else is refused and what it names is printed. Without a
#   marker, a directory holding anything besides lost+found (and the
#   marker's temp file, which init-dir.sh ignores too) is refused: its data
#   is of unknown origin. Without a marker and without such entries the
#   directory is already empty: done (a reclaim that ran before removed it
#   all, marker last);
# - no other filesystem is mounted anywhere below RECLAIM_DIR (MOUNTINFO),
#   and every entry at its top is on RECLAIM_DIR's own filesystem (device
#   number).
# Then it removes every entry except lost+found, the owner marker last, so a
# run that is interrupted leaves the marker and can simply be run again.
# Symlinks are removed, never followed (rm does not follow them); rm's
# --one-file-system keeps it from descending into another filesystem should
# one be mounted meanwhile (it fails instead). The directory itself and
# lost+found stay.
#
# Reports one line on stdout and, when writable, in TERMINATION_LOG (the pod's
# termination message), e.g.
#   reclaim: removed 1234 entries (5.6 GiB) from node-a1:/mnt/nvme0, owner tidb-gitops cluster=tidb-prod/prod instance=tikv-3
# counted by du before the removal (entries: files, directories and links,
# a file with several hard links once). A refusal goes to the same places.
# Other messages go to stderr.
#
# Env: RECLAIM_DIR (the mount path in this container, e.g. /reclaim), OWNER
# (the owner line of the retired instance, e.g. tidb-gitops
# cluster=tidb-prod/prod instance=tikv-3), HOST_PATH and NODE_NAME (for
# messages); optional MOUNTINFO (default /proc/self/mountinfo),
# TERMINATION_LOG (default /dev/termination-log).
# Exit: 0 emptied (or already empty), 1 refused or failed, 2 bad environment.
# Tools: bash, rm, du, stat, sync: all coreutils, which the Rocky Linux base of
# every image carries. find (findutils) is not used: whether the TiKV image
# has it is unverified, and bash's own globbing lists the top entries. rm's
# --one-file-system, du's -x, --inodes and -B, stat's -c and sync's -f are
# GNU coreutils options (coreutils 8.32 in Rocky Linux 9; inferred, not
# checked in the image).
# Runs as root like TiKV (whose files it removes) but without capabilities:
# a directory whose owner has no write permission cannot be emptied, and the
# run fails (marker kept).
set -euo pipefail
# Byte lengths and tools' messages independent of the image's locale.
export LC_ALL=C

log() {
  echo "reclaim: $*" >&2
}

# report LINE: the outcome, on stdout and in the termination message.
report() {
  printf 'reclaim: %s\n' "$1"
  if [[ -w "$TERMINATION_LOG" ]]; then
    printf 'reclaim: %s\n' "$1" >"$TERMINATION_LOG" || true
  fi
}

refuse() {
  report "$*"
  exit 1
}

bad_env() {
  log "$*"
  exit 2
}

for v in RECLAIM_DIR OWNER HOST_PATH NODE_NAME; do
  [[ -n "${!v:-}" ]] || bad_env "environment variable $v is not set"
done
[[ "$OWNER" != *$'\n'* ]] || bad_env "OWNER must be a single line"
[[ "$RECLAIM_DIR" == /* ]] || bad_env "RECLAIM_DIR='$RECLAIM_DIR' is not an absolute path"
MOUNTINFO="${MOUNTINFO:-/proc/self/mountinfo}"
TERMINATION_LOG="${TERMINATION_LOG:-/dev/termination-log}"
dir="$RECLAIM_DIR"
while [[ "$dir" == */ ]]; do dir="${dir%/}"; done
[[ -n "$dir" ]] || bad_env "RECLAIM_DIR is /, not a mounted directory"
where="$NODE_NAME:$HOST_PATH"
marker="$dir/.tidb-gitops-owner"
tmp="$marker.tmp"

# The container is PID 1 here; rm finishes its current call before this runs.
trap 'log "stopped by a signal; the owner marker stays, so running again continues"; exit 143' TERM INT

if [[ -L "$dir" || ! -d "$dir" ]]; then
  refuse "$RECLAIM_DIR ($where) is not a directory; nothing removed"
fi

# Every entry at the top but lost+found and the marker.
shopt -s nullglob dotglob
entries=()
for entry in "$dir"/*; do
  case "$entry" in
    "$dir/lost+found" | "$marker") ;;
    *) entries+=("$entry") ;;
  esac
done

if [[ ! -e "$marker" && ! -L "$marker" ]]; then
  for entry in "${entries[@]}"; do
    if [[ "$entry" != "$tmp" ]]; then
      found="${entry##*/}"
      if ((${#entries[@]} > 1)); then found+=" and $((${#entries[@]} - 1)) more"; fi
      refuse "$where has no owner marker but is not empty (found $found): its data is of unknown origin, not known to be $OWNER's; nothing removed"
    fi
  done
  report "$where is already empty (no owner marker, nothing but lost+found); nothing to remove"
  exit 0
fi

if [[ -L "$marker" || ! -f "$marker" ]]; then
  refuse "the owner marker $HOST_PATH/.tidb-gitops-owner on $NODE_NAME is not a regular file (a symlink, a directory or a device); nothing removed"
fi
[[ -r "$marker" ]] || refuse "cannot read the owner marker $HOST_PATH/.tidb-gitops-owner on $NODE_NAME; nothing removed"
# The whole file, newlines included (read stops only at a NUL byte or the
# end); its size in bytes must match, so nothing hides after a NUL.
content=""
IFS= read -r -d '' content <"$marker" || true
size="$(stat -c %s -- "$marker")"
if [[ "$content" != "$OWNER"$'\n' && "$content" != "$OWNER" ]] || ((size != ${#content})); then
  named="${content%%$'\n'*}"
  if [[ "$named" == "$OWNER" ]]; then
    refuse "the owner marker of $where names $OWNER but holds more than that one line; nothing removed"
  fi
  if ((${#named} > 200)); then named="${named:0:200}..."; fi
  refuse "$where belongs to someone else: its owner marker says '$named', not '$OWNER'; nothing removed"
fi

# No other filesystem inside: mountinfo's fifth field is the mount point, with
# space, tab, newline and backslash escaped as octal.
[[ -r "$MOUNTINFO" ]] || refuse "cannot read $MOUNTINFO to check that nothing is mounted inside $RECLAIM_DIR; nothing removed"
inside=()
while read -r _ _ _ _ mp _; do
  mp="${mp//\\040/ }"
  mp="${mp//\\011/$'\t'}"
  mp="${mp//\\012/$'\n'}"
  mp="${mp//\\134/\\}"
  if [[ "$mp" == "$dir/"* ]]; then inside+=("${mp#"$dir/"}"); fi
done <"$MOUNTINFO"
if ((${#inside[@]} > 0)); then
  refuse "another filesystem is mounted inside $where (at ${inside[*]}); unmount it first; nothing removed"
fi

all=("${entries[@]}" "$marker")
mapfile -t devices < <(stat -c %d -- "$dir" "${all[@]}")
if ((${#devices[@]} != ${#all[@]} + 1)); then
  refuse "could not stat the entries of $where; nothing removed"
fi
for i in "${!all[@]}"; do
  if [[ "${devices[i + 1]}" != "${devices[0]}" ]]; then
    refuse "${all[i]##*/} in $where is on another filesystem; nothing removed"
  fi
done

# human BYTES: e.g. 5.6 GiB.
human() {
  local bytes="$1" scale=1 i=0 tenths
  local -a units=(B KiB MiB GiB TiB PiB)
  while ((i < 5 && bytes >= scale * 1024)); do
    scale=$((scale * 1024))
    i=$((i + 1))
  done
  if ((i == 0)); then
    printf '%s B\n' "$bytes"
    return
  fi
  tenths=$(((bytes * 10 + scale / 2) / scale))
  printf '%d.%d %s\n' $((tenths / 10)) $((tenths % 10)) "${units[i]}"
}

# total ARGS...: the total of du -s -x -c ARGS on the entries (its last
# line); nothing when du says nothing useful.
total() {
  local out last
  out="$(du -s -x -c "$@" -- "${all[@]}" 2>/dev/null)" || true
  last="${out##*$'\n'}"
  last="${last%%[[:space:]]*}"
  if [[ "$last" =~ ^[0-9]+$ ]]; then printf '%s\n' "$last"; fi
}
count="$(total --inodes)"
bytes="$(total -B1)"
log "removing ${count:-an unknown number of} entries from $RECLAIM_DIR ($where), owner $OWNER, the marker last"

if ((${#entries[@]} > 0)); then
  if ! errors="$(rm -rf --one-file-system -- "${entries[@]}" 2>&1)"; then
    # rm's first complaints; one per entry it could not remove.
    n=0
    while IFS= read -r line && ((n++ < 20)); do log "$line"; done < <(printf '%s\n' "$errors")
    refuse "could not remove everything in $where (see above); the owner marker stays, so running again continues"
  fi
fi
# What was removed reaches the disk before the marker goes.
sync -f -- "$dir" || refuse "sync of $where failed; the owner marker stays, so running again continues"
rm -f -- "$marker"
sync -f -- "$dir" || refuse "sync of $where failed after removing the owner marker"

left=()
for entry in "$dir"/*; do
  if [[ "$entry" != "$dir/lost+found" ]]; then left+=("${entry##*/}"); fi
done
if ((${#left[@]} > 0)); then
  refuse "$where is not empty after the removal (${left[*]}): something wrote to it meanwhile"
fi

if [[ -n "$count" && -n "$bytes" ]]; then
  report "removed $count entries ($(human "$bytes")) from $where, owner $OWNER"
else
  report "removed everything (du could not count it) from $where, owner $OWNER"
fi
