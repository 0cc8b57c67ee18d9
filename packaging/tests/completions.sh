#!/bin/bash
# completions.sh ROOT BASHCOMPDIR ZSHCOMPDIR FISHCOMPDIR SBINDIR -- the shell completions that
# `make install DESTDIR=ROOT` put into ROOT load and complete in real bash (bash-completion's
# loader, which finds a completion by the command's name), zsh (compinit, driven through a
# pty) and fish (its autoloader, `complete -C`): for each program a subcommand, an option and
# where there is one a value. The directories are the install paths (without ROOT); each
# shell is pointed at ROOT's copy only, so a file in the wrong place fails.
set -euo pipefail
root=$1 bashdir=$root$2 zshdir=$root$3 fishdir=$root$4 sbindir=$root$5
here=$(cd "$(dirname "$0")" && pwd)
fail=0 passed=0
# LINE (completed at its end) -> a candidate every shell must offer
cases=(
  "nodedev-helper libvirt-h|libvirt-hook"
  "nodedev-helper ap wait-b|wait-bindings"
  "nodedev-helper ap wait-bindings --time|--timeout"
  "nodedev-helper passthrough --control-d|--control-domain"
  "storage-align vol-c|vol-create"
  "storage-align plan --capa|--capacity"
  "storage-align plan --mode l|libvirt"
  "nss-libvirt-guest look|lookup"
  "nss-libvirt-guest lookup --expl|--explain"
  "nss-libvirt-guest lookup --service libvirt_g|libvirt_guest"
)
lines=(); wants=()
for c in "${cases[@]}"; do lines+=("${c%|*}"); wants+=("${c#*|}"); done
check() {  # check SHELL LINE WANT CANDIDATES...
  local sh=$1 line=$2 want=$3; shift 3
  local c
  for c in "$@"; do
    if [ "$c" = "$want" ]; then echo "completions: ok: $sh: '$line<TAB>' offers $want"; passed=$((passed + 1)); return; fi
  done
  echo "completions: FAILED: $sh: '$line<TAB>' does not offer $want (got: $*)" >&2; fail=1
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# bash: bash-completion's own loader, pointed at ROOT's data dir only; then what bash calls
# on TAB (the function of `complete -F`, with COMP_WORDS/COMP_CWORD set).
[ "$bashdir" = "$root/usr/share/bash-completion/completions" ] \
  || { echo "completions: bash test needs BASHCOMPDIR=/usr/share/bash-completion/completions" >&2; exit 1; }
for i in "${!lines[@]}"; do
  out=$(env -i PATH="$sbindir:/usr/bin:/bin" XDG_DATA_DIRS="$root/usr/share" BASH_COMPLETION_USER_DIR="$tmp/none" \
    bash --norc --noprofile -c '
      . /usr/share/bash-completion/bash_completion
      read -ra COMP_WORDS <<<"$1"; COMP_WORDS+=("${2:-}")
      [ "${1: -1}" = " " ] || { COMP_WORDS=("${COMP_WORDS[@]:0:${#COMP_WORDS[@]}-1}"); }
      COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMP_LINE=$1; COMP_POINT=${#COMP_LINE}
      __load_completion "${COMP_WORDS[0]}" || { echo "NOT LOADED"; exit 0; }
      spec=$(complete -p "${COMP_WORDS[0]}"); f=${spec#*-F }; f=${f%% *}
      COMPREPLY=()
      "$f" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
      printf "%s\n" "${COMPREPLY[@]}"' _ "${lines[$i]}")
  mapfile -t got <<<"$out"
  check bash "${lines[$i]}" "${wants[$i]}" "${got[@]}"
done

# zsh: the last word of the line zsh made of LINE<TAB> (an option may end in `=`)
"$here/zsh-complete.zsh" "$zshdir" "$tmp/zsh.out" "${lines[@]}"
mapfile -t zout < "$tmp/zsh.out"
for i in "${!lines[@]}"; do
  w=${zout[$i]:-}; w=${w%% }; w=${w##* }; w=${w%=}
  check zsh "${lines[$i]}" "${wants[$i]}" "$w"
done

# fish autoloads a command's completions only for a command on PATH: ROOT's sbin
for i in "${!lines[@]}"; do
  mapfile -t got < <(env -i HOME="$tmp" PATH="$sbindir:/usr/bin:/bin" fish -c \
    'set -p fish_complete_path $argv[1]; complete -C $argv[2]' "$fishdir" "${lines[$i]}" | cut -f1)
  check fish "${lines[$i]}" "${wants[$i]}" "${got[@]}"
done

echo "completions: $passed passed, $([ $fail = 0 ] && echo 0 || echo some) failed ($(( ${#lines[@]} * 3 )) checks: bash, zsh, fish)"
exit $fail
