"""The registry: entries are well formed, names unique, and a new file of entries is discovered."""

import os
import textwrap

import pytest

from benchmarks import registry
from benchmarks.registry import Entry, Paper, RegistryError, arch, entry
from resnet.config import TrainConfig

ENTRIES = registry.entries()


def test_the_papers_entries_in_order():
    names = [e.name for e in ENTRIES]
    table1 = [f"table1/row{i}" for i in range(1, 8)]
    table1.insert(5, "table1/row5-as-counted")  # row 5 both ways: as printed, as counted
    assert names[:9] == table1 + ["paper/final"]
    final = registry.get("paper/final")
    assert (
        final.train.epochs == 80 and final.paper.accuracy == 90.86 and final.paper.test_loss == 0.42
    )
    assert final.model == registry.get("table1/row6").model


@pytest.mark.parametrize("e", ENTRIES, ids=[e.name for e in ENTRIES])
def test_entry_is_well_formed(e):
    assert "\n" not in e.description and e.description
    assert e.group == e.name.split("/")[0]
    # the recipe is in the hash
    assert e.config_hash(TrainConfig(epochs=e.train.epochs + 1)) != e.config_hash()


def test_config_hashes_tell_configurations_apart():
    hashes = {(e.model, e.train): e.config_hash() for e in ENTRIES}
    # e.g. paper/final and paper/sgd: one model, two recipes
    assert len(set(hashes.values())) == len(hashes)


def test_authors_recipe_is_the_default():
    t = TrainConfig()
    assert (t.optimizer, t.lr, t.weight_decay, t.t_max, t.batch_size, t.crop_padding, t.hflip) == (
        "adam",
        0.1,
        0.0,
        200,
        128,
        4,
        True,
    )


def test_duplicate_and_malformed_entries_are_refused():
    with pytest.raises(RegistryError, match="duplicate entry name 'table1/row1'"):
        entry("table1/row1")(lambda: (arch(), TrainConfig()))
    with pytest.raises(RegistryError, match="malformed: conv_kernel"):
        entry("test/bad")(lambda: (arch(conv_kernel=2), TrainConfig()))
    with pytest.raises(RegistryError, match="malformed: epochs"):
        entry("test/bad")(lambda: (arch(), TrainConfig(epochs=0)))
    assert "test/bad" not in [e.name for e in registry.entries()]


def test_unknown_names_and_globs():
    with pytest.raises(RegistryError, match="unknown entry 'table1/row9'"):
        registry.get("table1/row9")
    assert [e.name for e in registry.select(["table1/row[12]", "paper/fin*"])] == [
        "table1/row1",
        "table1/row2",
        "paper/final",
    ]


def test_a_new_file_of_entries_is_discovered(tmp_path, monkeypatch):
    (tmp_path / "zz_mine.py").write_text(
        textwrap.dedent('''
        from benchmarks.registry import Paper, arch, entry
        from resnet.config import TrainConfig

        @entry("mine/tiny", paper=Paper(accuracy=50.0))
        def tiny():
            """A tiny net."""
            return arch(blocks=[1, 1, 1, 1], channels=[8, 16, 32, 64]), TrainConfig(epochs=3)
    ''')
    )
    monkeypatch.setenv(registry.ENV_PATH, str(tmp_path))
    with registry.temporary(fresh=True):  # as a new process would find the entries now
        names = [e.name for e in registry.entries()]
        assert names[-1] == "mine/tiny" and names[0] == "table1/row1"
        assert registry.get("mine/tiny").description == "A tiny net."
        assert registry.get("mine/tiny").paper == Paper(accuracy=50.0)
    assert "mine/tiny" not in [e.name for e in registry.entries()]


def test_temporary_entries_are_gone_afterwards():
    mine = Entry("mine/temp", "a temporary entry", arch(), TrainConfig(epochs=1))
    with registry.temporary([mine]):
        assert registry.get("mine/temp") is mine and registry.select(["mine/*"]) == [mine]
        with (
            pytest.raises(RegistryError, match="duplicate entry name 'mine/temp'"),
            registry.temporary([mine]),
        ):
            pass
    with pytest.raises(RegistryError, match="unknown entry 'mine/temp'"):
        registry.get("mine/temp")


def test_an_entries_file_that_fails_names_its_file_and_line(tmp_path):
    (tmp_path / "bad.py").write_text("from benchmarks.registry import entry\n\nx = 1 +\n")
    with (
        registry.temporary(),
        pytest.raises(RegistryError, match=r"bad\.py:3: SyntaxError: invalid syntax"),
    ):
        registry.load_file(tmp_path / "bad.py")
    (tmp_path / "bad.py").write_text("x = 1\ny = undefined_name\n")
    with (
        registry.temporary(),
        pytest.raises(
            RegistryError, match=r"bad\.py:2: NameError: name 'undefined_name' is not defined"
        ),
    ):
        registry.load_file(tmp_path / "bad.py")


ELSEWHERE = '''
from benchmarks.registry import arch, entry
from resnet.config import TrainConfig

@entry("elsewhere/tiny")
def tiny():
    """A tiny net kept outside the package."""
    return arch(blocks=[1, 1, 1, 1], channels=[8, 16, 32, 64]), TrainConfig(epochs=1)
'''


def _entries_folder(parent, mode=0o755, file_mode=0o644):
    """A folder for $RESBENCH_ENTRIES_PATH holding one entry file, with the given modes."""
    folder = parent / "entries"
    folder.mkdir()
    (folder / "elsewhere.py").write_text(ELSEWHERE)
    (folder / "elsewhere.py").chmod(file_mode)
    folder.chmod(mode)
    return folder


def _names_from_entries_path(monkeypatch, value: str) -> list[str]:
    monkeypatch.setenv(registry.ENV_PATH, value)
    with registry.temporary(fresh=True):
        return [e.name for e in registry.entries()]


def test_entries_path_runs_the_files_of_a_folder_only_you_can_write(tmp_path, monkeypatch):
    folder = _entries_folder(tmp_path)
    assert "elsewhere/tiny" in _names_from_entries_path(monkeypatch, str(folder))


def test_entries_path_refuses_a_relative_folder(tmp_path, monkeypatch):
    _entries_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        RegistryError, match=r"^\$RESBENCH_ENTRIES_PATH: entries is relative; list absolute"
    ):
        _names_from_entries_path(monkeypatch, "entries")


@pytest.mark.parametrize(
    "where, mode",
    [
        ("folder", 0o775),
        ("folder", 0o757),
        ("folder", 0o1777),
        ("file", 0o664),
        ("file", 0o646),
        ("parent", 0o777),
    ],
)
def test_entries_path_refuses_what_other_users_can_write(tmp_path, monkeypatch, where, mode):
    parent = tmp_path / "parent"
    parent.mkdir()
    folder = _entries_folder(
        parent,
        **{"mode": mode} if where == "folder" else {},
        **{"file_mode": mode} if where == "file" else {},
    )
    if where == "parent":
        parent.chmod(mode)  # anyone could rename `entries` away and put their own in its place
    shown = {"folder": folder, "file": folder / "elsewhere.py", "parent": parent}[where]
    with pytest.raises(RegistryError) as err:
        _names_from_entries_path(monkeypatch, str(folder))
    assert str(err.value) == (
        f"$RESBENCH_ENTRIES_PATH: {shown} is writable by other users (mode {mode:04o}); "
        f"its *.py files run as your code, so only you (or root) may own and write it"
    )


def test_entries_path_accepts_a_folder_under_a_sticky_shared_parent(tmp_path, monkeypatch):
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o1777)  # like /tmp: others can add their own folders but not replace yours
    assert "elsewhere/tiny" in _names_from_entries_path(monkeypatch, str(_entries_folder(parent)))


def test_entries_path_refuses_a_folder_another_user_owns(tmp_path, monkeypatch):
    folder = _entries_folder(tmp_path)
    if os.geteuid() == 0:
        os.chown(folder, 4242, -1)
    else:  # without root, be someone else instead
        monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 4242)
    owner = folder.stat().st_uid
    with pytest.raises(RegistryError, match=rf"{folder} is owned by another user \(uid {owner}\)"):
        _names_from_entries_path(monkeypatch, str(folder))
