#!/bin/zsh -f
# zsh-complete.zsh FPATH_DIR OUT LINE... -- type each LINE followed by TAB into one interactive
# zsh (in a pty, zsh/zpty) whose completion system (compinit) finds its functions in
# FPATH_DIR, and append the command line zsh made of it to OUT, one line per LINE.
zmodload zsh/zpty || exit 2
dir=$1 out=$2; shift 2
: >| $out
zpty vhk zsh -f -i || exit 2
zpty -w vhk "PS1=''; fpath=(${(q)dir} \$fpath); autoload -Uz compinit; compinit -u -D"
# ^X: write the edited line to OUT and start a new one (never run it)
zpty -w vhk "vhk-dump() { print -r -- \"\$BUFFER\" >> ${(q)out}; BUFFER=''; }; zle -N vhk-dump; bindkey '^X' vhk-dump"
n=0
for line in "$@"; do
  zpty -w -n vhk "$line"$'\t\x18'
  n=$((n + 1))
  for i in {1..150}; do
    while zpty -r -t vhk junk; do :; done   # keep the pty drained (listings of ambiguous TABs)
    (( $(wc -l < $out) >= n )) && break
    sleep 0.1
  done
  (( $(wc -l < $out) >= n )) || { print -u2 "zsh-complete.zsh: no answer for '$line' in 15 s"; zpty -d vhk; exit 1; }
done
zpty -d vhk
