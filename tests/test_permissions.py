"""Permissions without services: principals of keys, reader terms, signed principals, and the readers a
crawl derives from real files' owners, groups, modes and POSIX ACLs (tests run as root: chown, chmod)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from core.access import (
    ADMIN,
    Principal,
    check_readers,
    may_read,
    principal_from_token,
    principal_token,
    read_filter,
)
from core.config import ApiKey
from ingest.crawl import plan, scan
from ingest.documents import DocumentIn
from ingest.permissions import GROUP, MASK, OTHER, USER, USER_OBJ, parse_acl, readers_of
from mmsearch.cli import main as cli
from search import security

ROOT_ONLY = os.geteuid() != 0
NOBODY, NOGROUP = 65534, 65534  # Debian's nobody / nogroup


def test_keys_carry_a_principal_and_admin_keys_see_everything() -> None:
    _, alice = security.new_key(
        "alice-key", "read", user="alice", groups=("hr", "staff"), collections=("hr-*",)
    )
    principal = security.principal_for_key(alice)
    assert principal == Principal("alice-key", "alice", frozenset({"hr", "staff"}), ("hr-*",), admin=False)
    assert principal.may_use("hr-files") and not principal.may_use("wiki")
    assert read_filter(principal) == {"terms": {"readers": ["*", "user:alice", "group:hr", "group:staff"]}}
    _, admin = security.new_key("root", "admin", user="bob", collections=("none",))
    assert security.principal_for_key(admin) is ADMIN and read_filter(ADMIN) is None
    _, plain = security.new_key("old", "write")  # a key as made before principals: reads what `*` may
    assert security.principal_for_key(plain).reader_terms() == ["*"]
    for bad in ({"groups": ["a:b"]}, {"groups": ["*"]}, {"user": "x,y"}, {"collections": ["HR"]}):
        with pytest.raises(ValidationError):
            ApiKey(name="k", scope="read", sha256="a" * 64, **bad)


def test_keys_create_prints_the_principal_entry() -> None:
    out = CliRunner().invoke(
        cli,
        [
            "keys",
            "create",
            "--name",
            "a",
            "--user",
            "alice",
            "--groups",
            "hr,staff",
            "--collections",
            "hr-*,wiki",
        ],
    )
    assert out.exit_code == 0, out.output
    entry = ApiKey.model_validate_json(out.output.split("entry: ")[1].splitlines()[0])
    assert entry.user == "alice" and entry.groups == ("hr", "staff") and entry.collections == ("hr-*", "wiki")
    bad = CliRunner().invoke(cli, ["keys", "create", "--name", "a", "--groups", "a:b"])
    assert bad.exit_code == 2 and "groups" in bad.output


def test_reader_terms_are_checked_and_one_rule_decides_gets_and_searches() -> None:
    assert check_readers(["group:hr", "*", "group:hr"]) == ["*", "group:hr"]
    for bad in ("everyone", "user:", "group:a:b", "user:*", "role:x", "user:a,b", 5):
        with pytest.raises(ValueError, match="reader"):
            check_readers([bad])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="readers"):
        DocumentIn.model_validate({"text": "x", "readers": ["group:ok", "nobody"]})
    alice = Principal("k", "alice", frozenset({"hr"}))
    assert may_read(alice, ["group:hr"]) and may_read(alice, ["*"]) and may_read(alice, ["user:alice"])
    assert not may_read(alice, ["group:board", "user:bob"]) and not may_read(alice, [])
    assert not may_read(alice, None)  # a document without readers: admins only, as the terms filter
    assert may_read(ADMIN, None)


def test_a_signed_principal_round_trips_and_only_its_signature_makes_it_trusted() -> None:
    alice = Principal("k", "alice", frozenset({"hr", "staff"}), ("hr-*", "wiki"))
    assert principal_from_token(principal_token(alice)) == alice
    assert principal_from_token(principal_token(ADMIN)) == ADMIN
    for junk in ("", "!!!", principal_token(alice)[:-3], "WzEsMiwzXQ"):
        with pytest.raises(ValueError):
            principal_from_token(junk)


def acl_bytes(*entries: tuple[int, int, int]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


def test_acl_entries_are_parsed_and_the_mask_bounds_named_entries() -> None:
    undefined = 0xFFFFFFFF
    data = acl_bytes(
        (USER_OBJ, 6, undefined),
        (USER, 4, NOBODY),
        (0x04, 4, undefined),  # the owning group may read ...
        (GROUP, 4, 33),
        (MASK, 0, undefined),  # ... but the mask takes read from every group and named user
        (OTHER, 0, undefined),
    )
    entries = parse_acl(data)
    assert [(e.tag, e.id) for e in entries][:2] == [(USER_OBJ, None), (USER, NOBODY)]
    st = os.stat_result((0o100640, 0, 0, 1, 0, 0, 0, 0, 0, 0))
    assert readers_of(st, entries) == ["user:root"]
    opened = data.replace(struct.pack("<HHI", MASK, 0, undefined), struct.pack("<HHI", MASK, 4, undefined))
    assert readers_of(st, parse_acl(opened)) == ["group:root", "group:www-data", "user:nobody", "user:root"]
    for bad in (b"", b"\x02\x00\x00\x00\x01", acl_bytes((USER_OBJ, 6, 0)).replace(b"\x02", b"\x03", 1)):
        with pytest.raises(ValueError):
            parse_acl(bad)


@pytest.mark.skipif(ROOT_ONLY, reason="chown to other users needs root (the CI runs the tests as root)")
def test_crawled_files_get_readers_from_owner_group_mode_and_acl(tmp_path: Path) -> None:
    files = {
        "public.txt": (0, 0, 0o644),
        "owner_only.txt": (NOBODY, 0, 0o600),
        "group_only.txt": (0, 33, 0o040),
        "nobody_group.txt": (NOBODY, NOGROUP, 0o640),
        "unreadable.txt": (0, 0, 0o000),
        "numeric.txt": (4242, 4343, 0o640),  # ids with no name on this machine
    }
    for name, (uid, gid, mode) in files.items():
        path = tmp_path / name
        path.write_text(f"text of {name}")
        os.chown(path, uid, gid)
        path.chmod(mode)
    found = {rel: list(f.readers) for rel, f in scan(tmp_path).items()}
    assert found == {
        "public.txt": ["*", "group:root", "user:root"],
        "owner_only.txt": ["user:nobody"],
        "group_only.txt": ["group:www-data"],
        "nobody_group.txt": ["group:nogroup", "user:nobody"],
        "unreadable.txt": [],
        "numeric.txt": ["group:4343", "user:4242"],
    }
    # the same bytes with other readers: relabelled in place, not sent again
    local = scan(tmp_path)
    manifest = {
        rel: {"id": f"id-{rel}", "size": f.size, "mtime": f.mtime, "readers": list(f.readers)}
        for rel, f in local.items()
    }
    (tmp_path / "public.txt").chmod(0o600)
    todo = plan(scan(tmp_path), manifest)
    assert [(f.path, doc_id, f.readers) for f, doc_id in todo.relabelled] == [
        ("public.txt", "id-public.txt", ("user:root",))
    ]
    assert not todo.changed and not todo.added and len(todo.unchanged) == len(files) - 1


@pytest.mark.skipif(shutil.which("setfacl") is None, reason="setfacl (Debian package `acl`) is not installed")
@pytest.mark.skipif(ROOT_ONLY, reason="chown to other users needs root (the CI runs the tests as root)")
def test_posix_acl_entries_set_by_setfacl_become_readers(tmp_path: Path) -> None:
    path = tmp_path / "board.txt"
    path.write_text("minutes")
    path.chmod(0o600)
    subprocess.run(["setfacl", "-m", "u:nobody:r,g:www-data:r,g:nogroup:-", str(path)], check=True)
    assert list(scan(tmp_path)["board.txt"].readers) == ["group:www-data", "user:nobody", "user:root"]
    subprocess.run(["setfacl", "-m", "m::-", str(path)], check=True)  # the mask now takes read away
    assert list(scan(tmp_path)["board.txt"].readers) == ["user:root"]
