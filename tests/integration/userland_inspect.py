"""Run inside a lab host (python3 of any lab suite, stdlib only): what a layer's tree holds.

    python3 userland_inspect.py DIR

Prints one JSON object: entries (as `find DIR | wc -l` counts them), distinct inodes, setuid
and setgid regular files, files with more than one link, owners ("uid:gid" -> count), the
security.capability values and user.* extended attributes by path, and every path's owner.
"""
import json
import os
import stat
import sys


def inspect(root):
    out = {"entries": 0, "setuid": 0, "setgid": 0, "multi_link": 0, "owners": {}, "caps": {}, "xattrs": {},
           "xattr_errors": [], "owner_of": {}}
    inodes = set()

    def visit(path):
        st = os.lstat(path)
        rel = os.path.relpath(path, root)
        out["entries"] += 1
        out["owner_of"][rel] = "%d:%d" % (st.st_uid, st.st_gid)
        inodes.add(st.st_ino)
        if stat.S_ISREG(st.st_mode):
            out["setuid"] += 1 if st.st_mode & stat.S_ISUID else 0
            out["setgid"] += 1 if st.st_mode & stat.S_ISGID else 0
            out["multi_link"] += 1 if st.st_nlink > 1 else 0
        owner = "%d:%d" % (st.st_uid, st.st_gid)
        out["owners"][owner] = out["owners"].get(owner, 0) + 1
        if stat.S_ISLNK(st.st_mode):
            return
        try:
            for name in os.listxattr(path, follow_symlinks=False):
                value = os.getxattr(path, name, follow_symlinks=False)
                if name == "security.capability":
                    out["caps"][rel] = value.hex()
                elif name.startswith("user."):
                    out["xattrs"]["%s %s" % (rel, name)] = value.decode("utf-8", "replace")
        except OSError as exc:
            out["xattr_errors"].append("%s: %s" % (rel, exc))

    visit(root)
    for parent, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            visit(os.path.join(parent, name))
    out["inodes"] = len(inodes)
    return out


if __name__ == "__main__":
    print(json.dumps(inspect(sys.argv[1]), sort_keys=True))
