"""scripts/corpus_tools.py: the cleaning, cutting and .deb reading that the corpus build scripts share.

The scripts are not part of the chargen package; they are loaded from scripts/ here.
"""
import importlib.util
import io
import tarfile
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "scripts" / "corpus_tools.py"
_SPEC = importlib.util.spec_from_file_location("corpus_tools", _PATH)
ct = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ct)


def test_clean_normalises_line_ends_nfc_colours_controls_and_blank_runs():
    """fortunes-zh colours its titles with ANSI codes; sources mix CRLF, decomposed accents and trailing spaces."""
    raw = "\n\x1b[32m《送别》\x1b[m  \r\nCafe\u0301\x07\r\n\n\n\n\nend\t \n\n"
    assert ct.clean(raw) == "《送别》\nCafé\n\n\nend\n"


def test_cap_cuts_at_the_last_blank_line_before_the_limit():
    text = "one\ntwo\n\nthree\n\nfour four four\n"
    assert ct.cap(text, 17) == "one\ntwo\n\nthree\n"
    assert ct.cap(text, 100) == text
    assert ct.cap(text, None) == text


def test_join_parts_separates_parts_by_one_blank_line_and_caps_the_whole():
    assert ct.join_parts(["a\r\nb\n\n", "c"], None) == "a\nb\n\nc\n"
    assert ct.join_parts(["a\n", "b\n\nc c c c\n"], 6) == "a\n\nb\n"


def test_split_heldout_takes_the_tail_from_a_line_start():
    text = "".join(f"line {i:02d}\n" for i in range(50))  # 400 characters, 8 a line
    train, heldout = ct.split_heldout(text, 0.02)
    assert train + heldout == text
    assert heldout == "line 49\n"  # the cut at 392 falls at the start of the last line


def test_charset_counts_distinct_frequent_and_non_ascii():
    s = ct.charset("a" * 100 + "é" * 99 + "b")
    assert (s["chars"], s["bytes"], s["distinct"], s["frequent"]) == (200, 299, 3, 1)
    assert s["non_ascii"] == pytest.approx(99 / 200)


def _deb(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A minimal .deb: an ar archive whose odd-sized first member forces the padding byte."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    blob = b"!<arch>\n"
    for name, body in (("debian-binary", b"2.0\n\n"), ("data.tar.gz", data.getvalue())):
        blob += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        blob += b"\n" * (len(body) % 2)
    path = tmp_path / "x_1.0_all.deb"
    path.write_bytes(blob)
    return path


def test_deb_files_reads_matching_files_from_the_data_archive(tmp_path):
    deb = _deb(tmp_path, {"usr/share/dict/words": b"apple\n", "usr/share/doc/x/copyright": b"PD\n"})
    assert ct.deb_files(deb, r"dict/words$") == {"usr/share/dict/words": b"apple\n"}
    assert ct.deb_package(tmp_path, "x", "1.0") == deb  # found in the cache, nothing fetched


def test_split_heldout_without_a_line_break_after_the_cut_holds_nothing_out():
    assert ct.split_heldout("no line break at all", 0.5) == ("no line break at all", "")
