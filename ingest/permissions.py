"""Who may read a crawled file, as the file system decides, in reader terms (`core.access`).

The owner if the owner may read (`user:<name>`), the owning group if it may (`group:<name>`), everyone if
others may (`*`); with a POSIX ACL (the `system.posix_acl_access` extended attribute) also each named user
and group whose entry, limited by the ACL's mask, grants read. Names are the crawling machine's (pwd/grp),
the numeric id where it has none. What reader terms cannot say: a file that denies its owner while others
may read it (POSIX stops at the owner entry) is readable by everyone here, and the folders above a file
(which need search permission) are not consulted.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from core.access import EVERYONE

ACL_XATTR = "system.posix_acl_access"
ACL_VERSION = 2
ACL_ENTRY = struct.Struct("<HHI")  # tag, permissions, id (little-endian, as the kernel stores them)
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
READ = 0x4


@dataclass(frozen=True)
class AclEntry:
    tag: int
    perm: int
    id: int | None  # a named user's or group's id; None for the owner, owning group, mask and others


def parse_acl(data: bytes) -> list[AclEntry]:
    """The entries of a `system.posix_acl_access` value (ValueError when it is not one)."""
    if len(data) < 4 or (len(data) - 4) % ACL_ENTRY.size:
        raise ValueError(f"a POSIX ACL is a 4-byte header and 8-byte entries, not {len(data)} bytes")
    (version,) = struct.unpack_from("<I", data)
    if version != ACL_VERSION:
        raise ValueError(f"POSIX ACL version {version}; only version {ACL_VERSION} is known")
    entries = []
    for offset in range(4, len(data), ACL_ENTRY.size):
        tag, perm, ident = ACL_ENTRY.unpack_from(data, offset)
        entries.append(AclEntry(tag, perm, ident if tag in (USER, GROUP) else None))
    return entries


def read_acl(path: Path) -> list[AclEntry]:
    """The file's access ACL; empty when it has none or the file system keeps no xattrs."""
    try:
        return parse_acl(os.getxattr(path, ACL_XATTR))
    except (OSError, ValueError, AttributeError):  # no ACL, unsupported, or a platform without getxattr
        return []


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def readers_of(st: os.stat_result, acl: list[AclEntry] | None = None) -> list[str]:
    """Reader terms of a file with this stat (and ACL entries, when it has an ACL), sorted."""
    entries = acl or []
    if not entries:
        mode = st.st_mode
        owner, group, other = bool(mode & stat.S_IRUSR), bool(mode & stat.S_IRGRP), bool(mode & stat.S_IROTH)
        terms = [f"user:{user_name(st.st_uid)}"] if owner else []
        terms += [f"group:{group_name(st.st_gid)}"] if group else []
        return sorted(terms + ([EVERYONE] if other else []))
    mask = next((e.perm for e in entries if e.tag == MASK), 0x7)
    terms = []
    for entry in entries:
        limit = mask if entry.tag in (USER, GROUP_OBJ, GROUP) else 0x7  # the mask bounds these only
        if not entry.perm & limit & READ:
            continue
        if entry.tag == USER_OBJ:
            terms.append(f"user:{user_name(st.st_uid)}")
        elif entry.tag == USER and entry.id is not None:
            terms.append(f"user:{user_name(entry.id)}")
        elif entry.tag == GROUP_OBJ:
            terms.append(f"group:{group_name(st.st_gid)}")
        elif entry.tag == GROUP and entry.id is not None:
            terms.append(f"group:{group_name(entry.id)}")
        elif entry.tag == OTHER:
            terms.append(EVERYONE)
    return sorted(set(terms))


def file_readers(path: Path, st: os.stat_result | None = None) -> list[str]:
    """Reader terms of the file at `path` (its stat given when the caller has it)."""
    return readers_of(st or path.stat(), read_acl(path))
