#!/bin/bash
# Init container of every PD and TiKV pod: makes sure the pod's data directory
# is the right one before the server writes to it.
#
# Env: DATA_DIR (mount path in this container), OWNER (one line naming cluster
# and instance), HOST_PATH and NODE_NAME (for messages), REQUIRE_MOUNT
# (true|false), optional MOUNTINFO (default /proc/self/mountinfo).
# Tools: bash, mv, sync (coreutils, in every image).
# Exit 0 when the directory may be used, 1 when refused.
set -euo pipefail

die() {
  echo "init-dir: $*" >&2
  exit 1
}

for v in DATA_DIR OWNER HOST_PATH NODE_NAME REQUIRE_MOUNT; do
  [[ -n "${!v:-}" ]] || die "environment variable $v is not set"
done
[[ "$OWNER" != *$'\n'* ]] || die "OWNER must be a single line"
mountinfo="${MOUNTINFO:-/proc/self/mountinfo}"
where="host path $HOST_PATH on node $NODE_NAME"

# Inside the container DATA_DIR is always a bind mount, so `mountpoint` proves
# nothing. The mountinfo root field (4th) is the mounted directory's path inside
# its source filesystem: "/" means the host path is itself a mount point (a
# dedicated disk); anything else means a plain directory on another filesystem,
# usually the root disk. (A disk mounted as a btrfs subvolume also shows its
# subvolume path here; use require_mount = false for such a dir.)
case "$REQUIRE_MOUNT" in
  true)
    want="$DATA_DIR"
    [[ "$want" == / ]] || want="${want%/}"
    root=""
    # The last matching line wins: later mounts shadow earlier ones.
    while read -r _ _ _ r mp _; do
      # mountinfo escapes space, tab, newline and backslash as octal.
      mp="${mp//\\040/ }"
      mp="${mp//\\011/$'\t'}"
      mp="${mp//\\012/$'\n'}"
      mp="${mp//\\134/\\}"
      if [[ "$mp" == "$want" ]]; then root="$r"; fi
    done <"$mountinfo"
    if [[ -z "$root" ]]; then
      die "$DATA_DIR is not a mount in this container ($mountinfo), so it cannot be checked that $where is a mount point; refusing to start"
    fi
    if [[ "$root" != / ]]; then
      die "$where is not a mount point: it is the directory ${root//\\040/ } of another filesystem (probably the root disk), so data would land there instead of on a dedicated disk. Mount the disk at $HOST_PATH on $NODE_NAME, or set require_mount = false for this dir in inventory.toml."
    fi
    ;;
  false) ;;
  *) die "REQUIRE_MOUNT must be true or false, not '$REQUIRE_MOUNT'" ;;
esac

[[ -d "$DATA_DIR" ]] || die "$DATA_DIR ($where) is not a directory"

marker="$DATA_DIR/.tidb-gitops-owner"
tmp="$marker.tmp"

if [[ -e "$marker" || -L "$marker" ]]; then
  [[ -f "$marker" && -r "$marker" ]] || die "$marker ($where) is not a readable file; refusing to start"
  found="$(<"$marker")"
  if [[ "$found" != "$OWNER" ]]; then
    die "$where belongs to another instance or cluster: its owner marker says '$found', this pod is '$OWNER'. Its data was not touched. Check that inventory.toml and the lock point this instance at the right directory."
  fi
  exit 0
fi

# No marker: first use, allowed only on an empty directory. lost+found comes
# with a fresh filesystem; the temp file is left by an interrupted first use.
shopt -s nullglob dotglob
for entry in "$DATA_DIR"/*; do
  case "$entry" in
    "$DATA_DIR/lost+found" | "$tmp") ;;
    *) die "$where has no owner marker but is not empty (found ${entry##*/}): it holds data of unknown origin. Refusing to use it; empty it by hand if the data is not needed, or fix the directory in inventory.toml." ;;
  esac
done

# Atomic: a crash leaves either no marker or a complete one.
printf '%s\n' "$OWNER" >"$tmp"
sync -- "$tmp"
mv -f -- "$tmp" "$marker"
echo "init-dir: first use of $where; wrote owner marker for $OWNER" >&2
