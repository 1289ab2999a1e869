# A stand-in for mpremote, for flash.py's board path: the board's file system is the
# directory $FAKE_BOARD_DIR and `exec` runs the code on the real micropython there.
# Understands what flash.py uses: connect PORT, exec CODE, fs cp [-r] SRC :DEST, and "+".
import os
import shutil
import subprocess
import sys

MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")


def _cp(args, root):
    recursive = "-r" in args
    paths = [a for a in args if not a.startswith("-")]
    src, dest = paths[0], paths[1]
    if not dest.startswith(":"):
        sys.exit("fake mpremote: only copies to the board")
    dest = os.path.join(root, dest[1:].strip("/"))
    if recursive and os.path.isdir(src):
        # mpremote: into dest if it exists, else dest becomes the copy.
        if os.path.isdir(dest):
            dest = os.path.join(dest, os.path.basename(src))
        shutil.copytree(src, dest, dirs_exist_ok=True)
    else:
        if os.path.isdir(dest):
            dest = os.path.join(dest, os.path.basename(src))
        if not os.path.isdir(os.path.dirname(dest)):
            sys.exit("cp: No such file or directory: %s" % dest)
        shutil.copyfile(src, dest)


def main(argv):
    root = os.environ["FAKE_BOARD_DIR"]
    if argv[:1] != ["connect"] or len(argv) < 2:
        sys.exit("fake mpremote: want connect PORT ...")
    if argv[1] == "/dev/nothing":
        sys.exit("mpremote: failed to access /dev/nothing (it may be in use by another program)")
    cmds, cur = [], []
    for a in argv[2:]:
        if a == "+":
            cmds.append(cur)
            cur = []
        else:
            cur.append(a)
    cmds.append(cur)
    with open(os.path.join(root, "..", "mpremote.log"), "a") as log:
        log.write(" ".join(argv) + "\n")
    for c in cmds:
        if c[0] == "exec":
            r = subprocess.run([MICROPYTHON, "-c", c[1]], cwd=root)
            if r.returncode:
                sys.exit(1)
        elif c[:2] == ["fs", "cp"]:
            _cp(c[2:], root)
        else:
            sys.exit("fake mpremote: unknown command %r" % c)


if __name__ == "__main__":
    main(sys.argv[1:])
