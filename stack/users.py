"""Elasticsearch and OpenSearch refuse to run as root: as root, a node runs as an unprivileged user that
must own its config and data dirs and reach the distribution and the JDK."""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterable
from pathlib import Path

from stack.errors import StackError

NODE_USER_WHEN_ROOT = "nobody"


def node_user() -> pwd.struct_passwd | None:
    """The user a node runs as: None (this process's user) unless we are root."""
    return pwd.getpwnam(NODE_USER_WHEN_ROOT) if os.geteuid() == 0 else None


def grant(user: pwd.struct_passwd, *, reach: Iterable[Path], own: Iterable[Path]) -> None:
    """Check that `user` can reach every path in `reach`, then hand it the paths in `own`."""
    for path in reach:
        check_reachable(path, user)
    for path in own:
        os.chown(path, user.pw_uid, user.pw_gid)


def check_reachable(path: Path, user: pwd.struct_passwd) -> None:
    """Raise, saying which directory to open up, when `user` cannot traverse to `path`."""
    for parent in (path, *path.parents):
        st = parent.stat()
        if st.st_uid == user.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        if st.st_gid == user.pw_gid and st.st_mode & stat.S_IXGRP:
            continue
        raise StackError(
            f"{parent} is not reachable by user {user.pw_name!r}, which Elasticsearch runs as because it "
            f"refuses to run as root: `chmod o+x {parent}` or choose a data dir outside it"
        )
