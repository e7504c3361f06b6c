"""The local photo folder: atomic writes, keys kept inside the folder, clear errors."""

from __future__ import annotations

import os

import pytest

from portal.storage import LocalPhotoStore, StorageError, new_key


@pytest.fixture
def store(tmp_path):
    return LocalPhotoStore(tmp_path / "photos")


def all_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_roundtrip_and_delete(store):
    key = new_key(".jpg")
    store.put(key, b"\xff\xd8\xff photo", "image/jpeg")
    assert store.get(key) == b"\xff\xd8\xff photo"
    store.delete(key)
    with pytest.raises(StorageError):
        store.get(key)
    store.delete(key)  # deleting twice is not an error


def test_write_is_atomic_and_leaves_no_temp_files(store):
    key = new_key(".jpg")
    store.put(key, b"first version", "image/jpeg")
    store.put(key, b"second", "image/jpeg")  # replaced whole, never truncated in place
    assert store.get(key) == b"second"
    assert all_files(store.root) == [key]
    assert not any(name.startswith(".tmp-") for _, _, names in os.walk(store.root) for name in names)


def test_replace_keeps_readers_on_a_whole_file(store):
    key = new_key(".jpg")
    store.put(key, b"A" * 100_000, "image/jpeg")
    path = store.root / key
    with open(path, "rb") as reader:  # a reader that opened the old file keeps reading the old file
        store.put(key, b"B" * 10, "image/jpeg")
        assert reader.read() == b"A" * 100_000
    assert store.get(key) == b"B" * 10


@pytest.mark.parametrize("key", ["../outside.jpg", "photos/../../outside.jpg", "/etc/passwd", ".", ""])
def test_keys_escaping_the_folder_are_refused(store, key, tmp_path):
    with pytest.raises(StorageError):
        store.put(key, b"x", "image/jpeg")
    with pytest.raises(StorageError):
        store.get(key)
    with pytest.raises(StorageError):
        store.delete(key)
    assert not (tmp_path / "outside.jpg").exists()


def test_symlink_out_of_the_folder_is_refused(store, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    store.root.mkdir(parents=True)
    (store.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError):
        store.get("link/secret.jpg")
    with pytest.raises(StorageError):
        store.put("link/new.jpg", b"x", "image/jpeg")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.jpg"]


def test_missing_key_is_a_storage_error(store):
    with pytest.raises(StorageError):
        store.get(new_key(".jpg"))


def test_unwritable_folder_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_bytes(b"")
    store = LocalPhotoStore(blocker)
    with pytest.raises(StorageError):
        store.put(new_key(".jpg"), b"x", "image/jpeg")
