"""Corpora of many files: expanding paths, folders and globs (sources.py), joining the files with the
separator U+001C (stream.py, cache.py), the whole-file validation split, the cache's key and
fingerprint, run names, and one-line errors for every way the input can be wrong."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import chargen.data.cache as prep
import chargen.data.utf8 as scan
from chargen import ChargenError, Sources, Vocab, load_corpus, prepare_corpus, train
from chargen.data import FILE_SEPARATOR, split_files
from chargen.training.runs import default_run_dir, newest_run

FS = FILE_SEPARATOR


def tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Write `files` (relative path -> content) under root; str content as UTF-8."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return root


TEXTS = {"b.txt": "bee\n", "a/z.txt": "zed 😀\n", "a-b.txt": "dash é\n", "a/b/c.txt": "see 한국\r\n"}
ORDER = ["a/b/c.txt", "a/z.txt", "a-b.txt", "b.txt"]  # folder by folder: a/... before a-b.txt


def test_a_folder_expands_to_its_files_in_a_stable_order(tmp_path):
    """Guards against an order that depends on the file system (os.listdir's) or that splits a folder's
    files: files sorted folder by folder, hidden files and folders skipped, `rel` relative to the folder."""
    root = tree(tmp_path / "corpus", {**TEXTS, ".hidden.txt": "x", ".git/config": "x", "a/.cache/y.txt": "x"})
    files = Sources((str(root),)).files()
    assert [f.rel for f in files] == ORDER
    assert [Path(f.path) for f in files] == [root / rel for rel in ORDER]


@pytest.mark.parametrize("size", [3, 7, 1 << 20])
def test_joined_ids_are_the_files_in_order_each_followed_by_the_separator(tmp_path, monkeypatch, size):
    """The prepared corpus must be exactly the files' texts in the documented order, each followed by
    U+001C, whatever the read size (pieces cut mid-file, slabs holding several files); a BOM is
    dropped; `ends` marks where each file (and its separator) ends."""
    monkeypatch.setattr(scan, "BLOCK_BYTES", size)
    root = tree(tmp_path / "corpus", {**TEXTS, "b.txt": b"\xef\xbb\xbfbee\n"})
    p = prepare_corpus(root, cache=tmp_path / "c")
    texts = [TEXTS[rel] for rel in ORDER]
    assert p.vocab.decode(p.ids) == "".join(t + FS for t in texts)
    assert p.vocab == Vocab.from_text("".join(texts) + FS)
    assert p.ends == tuple(np.cumsum([len(t) + 1 for t in texts]))
    assert p.files == tuple(str(root / rel) for rel in ORDER)
    assert p.counts[FS] == 4 and p.counts["e"] == sum(t.count("e") for t in texts)


def test_one_file_is_read_as_it_is_without_a_separator(tmp_path):
    """A corpus of one file (given as a folder or a list of one) must be that file alone: no U+001C in its
    vocabulary, the same ids as preparing the file itself."""
    root = tree(tmp_path / "one", {"only.txt": "just this\n"})
    for corpus in (root, [root / "only.txt"], Sources((str(root),))):
        p = prepare_corpus(corpus, cache=tmp_path / "c")
        assert p.vocab.decode(p.ids) == "just this\n" and FS not in p.vocab.chars and p.ends == (10,)


def test_paths_in_the_order_given_and_a_file_reached_twice_once(tmp_path):
    """Several paths are joined in the order given (each path's files sorted), and a file named again
    (by a folder and by itself) is read only the first time."""
    tree(tmp_path, {"x/1.txt": "one\n", "x/2.txt": "two\n", "y.txt": "why\n"})
    p = prepare_corpus([tmp_path / "y.txt", tmp_path / "x", tmp_path / "x" / "1.txt"], cache=tmp_path / "c")
    assert p.vocab.decode(p.ids) == f"why\n{FS}one\n{FS}two\n{FS}"


def test_include_and_exclude_match_the_relative_path_or_the_name(tmp_path):
    """--include keeps only matching files at any depth ('*' crosses folders, and the name is tried too);
    --exclude then leaves out matches; both repeatable."""
    root = tree(tmp_path / "src", {"main.py": "", "pkg/mod.py": "", "pkg/data.json": "", "tests/test_a.py": "",
                                   "README.md": ""})

    def rels(**patterns) -> list[str]:
        return [f.rel for f in Sources((str(root),), **patterns).files()]

    assert rels(include=("*.py",)) == ["main.py", "pkg/mod.py", "tests/test_a.py"]
    assert rels(include=("*.py",), exclude=("tests/*",)) == ["main.py", "pkg/mod.py"]
    assert rels(include=("*.py", "*.md")) == ["README.md", "main.py", "pkg/mod.py", "tests/test_a.py"]
    assert rels(exclude=("mod.py", "*.json")) == ["README.md", "main.py", "tests/test_a.py"]
    assert rels(include=("pkg/*",)) == ["pkg/data.json", "pkg/mod.py"]


def test_glob_patterns_expand_relative_to_their_fixed_folders(tmp_path, monkeypatch):
    """A quoted pattern is expanded by chargen ('**' crosses folders); its files' relative paths start
    below the pattern's fixed folders, which is also what the run is named after."""
    monkeypatch.chdir(tmp_path)
    tree(tmp_path, {"texts/en/a.txt": "a\n", "texts/en/deep/b.txt": "b\n", "texts/fr/c.txt": "c\n",
                    "texts/en/skip.md": "no\n"})
    sources = Sources(("texts/**/*.txt",))
    assert [f.rel for f in sources.files()] == ["en/a.txt", "en/deep/b.txt", "fr/c.txt"]
    assert sources.name == "texts"
    assert [f.rel for f in Sources(("texts/en/*",), exclude=("*.md",)).files()] == ["a.txt", "deep/b.txt"]


def test_names_of_runs_and_caches(tmp_path, monkeypatch):
    """A run is named after the first path: a file's stem, a folder's name ('.' is the current folder's),
    a pattern's fixed folder; default_run_dir and newest_run use that name."""
    monkeypatch.chdir(tmp_path)
    tree(tmp_path, {"books/a.txt": "a", "corpora/poem.txt": "p"})
    assert Sources.of("corpora/poem.txt").name == "poem"
    assert Sources.of(["books/", "corpora/poem.txt"]).name == "books"
    assert Sources.of(".").name == tmp_path.name
    assert Sources.of("books/*.txt").name == "books"
    assert default_run_dir(Sources.of("books"), "gru", "ck") == Path("ck/books-gru")
    (tmp_path / "ck" / "books-gru-2").mkdir(parents=True)
    (tmp_path / "ck" / "books-gru-2" / "last.pt").write_bytes(b"x")
    assert newest_run(["books"], None, "ck") == Path("ck/books-gru-2")


@pytest.mark.parametrize("case, message, hint", [
    ("empty folder", "holds no files", "folder with text files"),
    ("hidden only", "holds no files", "hidden files"),
    ("no match", "no file matches", "in quotes"),
    ("filtered out", "the include/exclude patterns leave none of the 2 files", "--include '*.py'"),
    ("missing", "corpus not found", "check the path"),
    ("all empty", "every file of", "contains text"),
])
def test_bad_sources_are_one_error_with_a_hint(tmp_path, case, message, hint):
    """Each way of naming no usable file must be one ChargenError with a hint, before any cache is written."""
    (tmp_path / "empty").mkdir()
    tree(tmp_path, {"hidden/.only": "x", "two/a.txt": "a", "two/b.txt": "b", "blank/a.txt": "", "blank/b.txt": ""})
    corpus = {"empty folder": tmp_path / "empty", "hidden only": tmp_path / "hidden",
              "no match": str(tmp_path / "two" / "*.py"), "missing": tmp_path / "nope.txt",
              "filtered out": Sources((str(tmp_path / "two"),), include=("*.py",)),
              "all empty": tmp_path / "blank"}[case]
    with pytest.raises(ChargenError) as e:
        prepare_corpus(corpus, cache=tmp_path / "c")
    assert message in e.value.message and hint in e.value.hint
    assert not (tmp_path / "c").exists() or case == "all empty"


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    """A file that cannot be opened (permissions) must be named in one error that suggests --exclude."""
    root = tree(tmp_path / "corpus", {"a.txt": "fine\n", "locked.txt": "secret\n"})
    real_open = os.open

    def refusing(path, *args, **kwargs):
        if str(path).endswith("locked.txt"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    with pytest.raises(ChargenError) as e:
        prepare_corpus(root, cache=tmp_path / "c")
    assert e.value.message == f"cannot read {root / 'locked.txt'}: Permission denied"
    assert "--exclude" in e.value.hint


@pytest.mark.parametrize("change", ["vanish", "append"])
def test_a_file_that_vanishes_or_changes_during_preparation_is_named(tmp_path, monkeypatch, change):
    """Guards against a cache made from half a change: a file deleted or appended to while the corpus is
    prepared (here, after the first slab) must stop it with an error naming that file, leaving no
    cache that a later run would take for current."""
    monkeypatch.setattr(scan, "BLOCK_BYTES", 4)
    root = tree(tmp_path / "corpus", {"a.txt": "first file\n", "b.txt": "second file\n", "c.txt": "third\n"})
    victim = root / "c.txt"

    def meddle(_):
        if victim.exists() and change == "vanish":
            victim.unlink()
        elif change == "append" and victim.read_text() == "third\n":
            victim.write_text("third, longer\n")

    with pytest.raises(ChargenError) as e:
        prepare_corpus(root, cache=tmp_path / "c", progress=meddle)
    wanted = "vanished while the corpus was being prepared" if change == "vanish" else "changed while it was"
    assert str(victim) in e.value.message and wanted in e.value.message
    victim.write_text("third\n")
    monkeypatch.setattr(scan, "BLOCK_BYTES", 1 << 20)
    assert not prepare_corpus(root, cache=tmp_path / "c").cache_hit  # nothing stale was kept


def test_a_character_cut_at_a_files_end_is_not_completed_by_the_next(tmp_path):
    """Two files that are each not UTF-8 (one ends in the first byte of 'é', the next starts with its
    second) must be refused naming the first, not joined into a valid 'é'."""
    root = tree(tmp_path / "corpus", {"1.txt": b"abc\xc3", "2.txt": b"\xa9def"})
    with pytest.raises(ChargenError) as e:
        prepare_corpus(root, cache=tmp_path / "c")
    assert e.value.message == f"{root / '1.txt'} is not UTF-8 text (bad byte at offset 3)"
    assert "--vocab bytes" in e.value.hint and "iconv" in e.value.hint


def test_the_cache_is_reused_until_one_file_changes(tmp_path, monkeypatch):
    """An unchanged folder must open from the cache without reading a file; changing one file's size or
    mtime, adding a file or removing one must each rebuild it, with the new text."""
    root = tree(tmp_path / "corpus", {"a.txt": "alpha\n", "b/c.txt": "gamma\n", "d.txt": "delta\n"})
    first = prepare_corpus(root, cache=tmp_path / "c")
    real_count = prep.count_chars
    monkeypatch.setattr(prep, "count_chars", lambda *a, **k: pytest.fail("the files were read again"))
    again = prepare_corpus(root, cache=tmp_path / "c")
    assert again.cache_hit and again.cache_dir == first.cache_dir and again.ends == first.ends
    np.testing.assert_array_equal(np.asarray(again.ids), np.asarray(first.ids))
    monkeypatch.setattr(prep, "count_chars", real_count)
    st = (root / "d.txt").stat()
    edits = [lambda: os.utime(root / "d.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9)),
             lambda: (root / "a.txt").write_text("alphabet\n"),
             lambda: (root / "e.txt").write_text("epsilon\n"),
             lambda: (root / "b" / "c.txt").unlink()]
    for edit in edits:
        edit()
        p = prepare_corpus(root, cache=tmp_path / "c")
        texts = [f.read_text() for f in sorted(root.rglob("*.txt"), key=lambda f: f.relative_to(root).parts)]
        assert not p.cache_hit and p.cache_dir == first.cache_dir  # the same entry, rebuilt
        assert p.vocab.decode(p.ids) == "".join(t + FS for t in texts)
        assert prepare_corpus(root, cache=tmp_path / "c").cache_hit


def test_the_separator_stays_however_rare(tmp_path):
    """min_char_count must never turn the file separator into the unknown symbol: two files, threshold 5."""
    root = tree(tmp_path / "corpus", {"a.txt": "aaaaaa", "b.txt": "aaaaab"})
    p = prepare_corpus(root, min_char_count=5, cache=tmp_path / "c")
    assert p.vocab.chars == (FS, "a", "\ufffd") and p.vocab.decode(p.ids) == f"aaaaaa{FS}aaaaa\ufffd{FS}"


# -- the whole-file validation split ---------------------------------------------------------
def test_split_files_takes_the_last_files():
    """Validation is whole files from the end: val_files of them, else about val_frac of them (at least
    one, never all); train is everything before them."""
    ids = np.arange(100)
    ends = (10, 30, 45, 70, 100)  # five files
    train_ids, val = split_files(ids, ends, val_frac=0.1)  # round(0.5) -> at least one file
    assert (len(train_ids), val.tolist()) == (70, list(range(70, 100)))
    train_ids, val = split_files(ids, ends, val_frac=0.5)  # round(2.5) = 2 files
    assert (len(train_ids), len(val)) == (45, 55)
    train_ids, val = split_files(ids, ends, val_frac=0.1, val_files=3)
    assert (len(train_ids), len(val)) == (30, 70)
    assert len(split_files(ids, ends, val_frac=0.0)[1]) == 0
    assert split_files(ids, (50, 100), val_frac=0.9)[0].tolist() == list(range(50))  # never every file
    with pytest.raises(ChargenError, match="--val-files 5 leaves no file to train on"):
        split_files(ids, ends, 0.1, val_files=5)


def test_split_files_with_a_cap_keeps_only_the_last_files_that_reach_it():
    """With val_chars, only as many of the last files as hold val_chars ids validate (the others train),
    and of them only the last val_chars ids: no id is both trained and scored."""
    ids = np.arange(100)
    ends = (10, 30, 45, 70, 100)
    train_ids, val = split_files(ids, ends, val_frac=0.6, val_chars=20)  # 3 files asked; the last holds 30
    assert train_ids.tolist() == list(range(70)) and val.tolist() == list(range(80, 100))
    train_ids, val = split_files(ids, ends, val_frac=0.6, val_chars=40)  # the last two hold 55 >= 40
    assert train_ids.tolist() == list(range(45)) and val.tolist() == list(range(60, 100))


def test_load_corpus_splits_a_folder_by_files(tmp_path):
    """load_corpus on a folder: the validation ids are exactly the last file with its separator."""
    root = tree(tmp_path / "corpus", {f"{i}.txt": f"text number {i}\n" * 3 for i in range(4)})
    corpus = load_corpus(root, val_frac=0.25, cache=tmp_path / "c", val_files=0)
    assert corpus.vocab.decode(corpus.val_ids) == "text number 3\n" * 3 + FS
    assert corpus.vocab.decode(corpus.train_ids) == "".join(f"text number {i}\n" * 3 + FS for i in range(3))
    two = load_corpus(root, val_frac=0.25, cache=tmp_path / "c", val_files=2)
    assert len(two.val_ids) == 2 * (len("text number 3\n") * 3 + 1) and two.val_ids.dtype == torch.int64
    with pytest.raises(ChargenError, match="--val-files 2 splits a corpus of several files"):
        load_corpus(root / "0.txt", val_frac=0.1, cache=tmp_path / "c", val_files=2)


def test_train_on_a_folder_names_the_run_after_it_and_resumes(tmp_path, make_model_config, make_train_config):
    """train() on a folder with include patterns: the run folder is named after the corpus folder, the
    model's vocabulary is the chosen files' (separator included), and resume=True finds and continues it."""
    root = tree(tmp_path / "poems", {f"p{i}.txt": "Twinkle twinkle little star,\nhow I wonder.\n" * 4
                                     for i in range(5)})
    (root / "notes.md").write_text("# not a poem \u00a7\n")
    sources = Sources((str(root),), include=("*.txt",))
    mc, cfg = make_model_config(cell="gru", hidden_size=12), make_train_config(max_steps=4, eval_every=2)
    first = train(sources, mc, cfg, root=tmp_path / "ck", progress=False)
    assert first.run_dir == tmp_path / "ck" / "poems-gru" and first.steps == 4
    from chargen import load_model
    _, vocab, ckpt = load_model(first.run_dir / "last.pt")
    assert FS in vocab.chars and "\u00a7" not in vocab.chars and ckpt.train_config.val_files == 0
    again = train(sources, mc, cfg, root=tmp_path / "ck", progress=False, resume=True, max_steps=6)
    assert again.run_dir == first.run_dir and again.steps == 6


# -- links, loops and empty files -------------------------------------------------------------
def test_a_file_reached_through_a_symlink_or_a_hard_link_is_read_once(tmp_path):
    """Guards against a linked copy of a file being read twice, where one copy could train and the other
    validate: a symlink and a hard link to a.txt are the same file (device and inode), kept once."""
    root = tree(tmp_path / "corpus", {"a.txt": "alpha\n", "b.txt": "beta\n"})
    os.symlink(root / "a.txt", root / "z-link.txt")
    os.link(root / "a.txt", root / "z-hard.txt")
    assert [f.rel for f in Sources((str(root),)).files()] == ["a.txt", "b.txt"]
    p = prepare_corpus(root, cache=tmp_path / "c")
    assert p.vocab.decode(p.ids) == f"alpha\n{FS}beta\n{FS}"


def test_a_glob_follows_no_folder_link_and_a_loop_ends_fast(tmp_path, monkeypatch):
    """Guards against a quoted '**' pattern following folder symlinks: a link to a parent folder repeated
    one file 41 times, and two such links ran past a minute. Each file is found once, quickly."""
    import time
    monkeypatch.chdir(tmp_path)
    tree(tmp_path, {"t/a/x.txt": "ex\n", "t/b/y.txt": "why\n"})
    os.symlink("..", tmp_path / "t" / "a" / "up")
    os.symlink("../..", tmp_path / "t" / "b" / "top")
    os.symlink("../a", tmp_path / "t" / "b" / "side")
    start = time.perf_counter()
    assert [f.rel for f in Sources(("t/**/*.txt",)).files()] == ["a/x.txt", "b/y.txt"]
    assert [f.rel for f in Sources(("t/*/*",)).files()] == ["a/x.txt", "b/y.txt"]
    assert [f.rel for f in Sources(("t/**",)).files()] == ["a/x.txt", "b/y.txt"]
    assert time.perf_counter() - start < 1.0


def test_empty_files_at_the_end_do_not_become_the_validation_part(tmp_path):
    """Guards against an empty file last in a folder becoming the validation file (a separator alone,
    then 'too short for a validation split' of a long corpus): the last file with text validates."""
    ids = np.arange(100)
    train_ids, val = split_files(ids, (40, 99, 100), val_frac=0.1)  # the last file is its separator alone
    assert (train_ids.tolist(), val.tolist()) == (list(range(40)), list(range(40, 100)))
    root = tree(tmp_path / "corpus", {"a.txt": "first text\n" * 3, "b.txt": "second one\n" * 3, "zz.txt": ""})
    corpus = load_corpus(root, val_frac=0.1, cache=tmp_path / "c")
    assert corpus.vocab.decode(corpus.val_ids) == "second one\n" * 3 + FS + FS
    with pytest.raises(ChargenError) as e:
        load_corpus(tree(tmp_path / "one", {"a.txt": "text\n", "b.txt": ""}), val_frac=0.1, cache=tmp_path / "c")
    assert (e.value.message, e.value.hint) == ("only 1 of the corpus's 2 files holds text, and validation takes "
                                               "whole files", "add a file to validate on, or use --val-frac 0")
