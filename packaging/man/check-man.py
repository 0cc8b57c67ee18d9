#!/usr/bin/env python3
"""check-man.py BINDIR -- the man pages in packaging/man/ must document the CLIs as built.

For every program with a page (PROGRAM.8), run `PROGRAM --help` and, recursively, `--help` of
each subcommand clap lists; every subcommand name and every long option must appear in the
page. A program that is not built yet is reported as SKIPPED (and counted), never as passed.
Positional arguments and wording are not compared: only the names users type, so the check
fails on real drift (a new or renamed command/option without documentation) and nothing else.
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
IGNORED_OPTIONS = {"--help", "--version"}


def page_text(path):
    """The page's source with roff escapes for hyphens and fonts removed."""
    text = open(path, encoding="utf-8").read()
    text = text.replace("\\-", "-")
    return re.sub(r"\\f[BIRP]", "", text)


def help_sections(program, args):
    """(subcommands, long options) shown by `program args... --help`."""
    out = subprocess.run([program, *args, "--help"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"check-man: `{' '.join([program, *args])} --help` failed "
                         f"(exit {out.returncode}): {out.stderr.strip()}")
    commands, options, section = [], [], None
    for line in out.stdout.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line[:-1].strip().lower()
            continue
        if section == "commands":
            m = re.match(r"^  (\S+)", line)
            if m and m.group(1) != "help":
                commands.append(m.group(1))
        elif section and "option" in section:
            m = re.match(r"^\s+(?:-\w, )?(--[\w-]+)", line)
            if m and m.group(1) not in IGNORED_OPTIONS:
                options.append(m.group(1))
    return commands, options


def check(program, page):
    text = page_text(page)
    missing, checked = [], 0
    todo = [[]]
    while todo:
        args = todo.pop()
        commands, options = help_sections(program, args)
        where = " ".join([os.path.basename(program), *args])
        for c in commands:
            checked += 1
            if not re.search(r"(?<![\w-])" + re.escape(c) + r"(?![\w-])", text):
                missing.append(f"subcommand `{where} {c}`")
            todo.append(args + [c])
        for o in options:
            checked += 1
            if not re.search(re.escape(o) + r"(?![\w-])", text):
                missing.append(f"option `{where} {o}`")
    return checked, missing


def main():
    bindir = sys.argv[1] if len(sys.argv) > 1 else "target/release"
    failed, skipped, total = False, 0, 0
    for name in sorted(os.listdir(HERE)):
        if not name.endswith(".8"):
            continue
        program = os.path.join(bindir, name[:-2])
        if not os.access(program, os.X_OK):
            print(f"check-man: SKIPPED {name}: {program} is not built (no such binary in the workspace yet)")
            skipped += 1
            continue
        checked, missing = check(program, os.path.join(HERE, name))
        total += checked
        for m in missing:
            print(f"check-man: packaging/man/{name} does not document {m}")
        failed |= bool(missing)
        print(f"check-man: {name}: {checked} subcommands/options checked, {len(missing)} missing")
    print(f"check-man: {total} names checked, {skipped} page(s) SKIPPED")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
