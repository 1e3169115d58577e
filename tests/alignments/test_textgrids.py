"""TextGrid reading: both Praat text formats written by hand, and every malformed-file error."""
from __future__ import annotations

from pathlib import Path

import pytest

from wordreps.alignments.markers import MarkerRule
from wordreps.alignments.textgrids import WordInterval, read_textgrid_words
from wordreps.common.errors import UserError

LONG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 1.5
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 1.5
        intervals: size = 7
        intervals [1]:
            xmin = 0
            xmax = 0.12
            text = ""
        intervals [2]:
            xmin = 0.12
            xmax = 0.45
            text = "Mister"
        intervals [3]:
            xmin = 0.45
            xmax = 0.5
            text = "sp"
        intervals [4]:
            xmin = 0.5
            xmax = 0.8
            text = "QUILTER"
        intervals [5]:
            xmin = 0.8
            xmax = 0.9
            text = "<unk>"
        intervals [6]:
            xmin = 0.9
            xmax = 1.2
            text = "mister"
        intervals [7]:
            xmin = 1.2
            xmax = 1.5
            text = ""
    item [2]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 1.5
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 1.5
            text = "M"
'''

SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
1.5
<exists>
2
"IntervalTier"
"phones"
0
1.5
1
0
1.5
"M"
"IntervalTier"
"words"
0
1.5
7
0
0.12
""
0.12
0.45
"Mister"
0.45
0.5
"sil"
0.5
0.8
"QUILTER"
0.8
0.9
"<unk>"
0.9
1.2
"mister"
1.2
1.5
"<eps>"
'''

UNK = WordInterval("<unk>", 0.8, 0.9)
EXPECTED = [WordInterval("mister", 0.12, 0.45), WordInterval("quilter", 0.5, 0.8), WordInterval("mister", 0.9, 1.2)]


def _write(tmp_path: Path, text: str | bytes, name: str = "1-2-0003.TextGrid") -> Path:
    path = tmp_path / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


@pytest.mark.parametrize("text,skipped", [(LONG, {"": 2, "sp": 1, "<unk>": 1}),
                                          (SHORT, {"": 1, "sil": 1, "<unk>": 1, "<eps>": 1})], ids=["long", "short"])
def test_both_formats_give_the_same_words(tmp_path, text, skipped):
    # Lower-cased, markers ("", sp, sil, <eps>, <unk>) skipped and counted, the repeated "mister" kept twice.
    tg = read_textgrid_words(_write(tmp_path, text))
    assert tg.words == EXPECTED
    assert sorted(tg.tier_names) == ["phones", "words"]
    assert tg.xmax_s == 1.5
    assert dict(tg.skipped.counts) == skipped  # the words tier's labels above, read by eye
    # the rule before markers existed: keep everything, skip only silences
    old = read_textgrid_words(_write(tmp_path, text), MarkerRule.from_flags(True, ["sp", "sil", "<eps>"]))
    assert old.words == EXPECTED[:2] + [UNK] + EXPECTED[2:]


def test_utf16_with_bom_and_speaker_prefixed_tier(tmp_path):
    text = LONG.replace('name = "words"', 'name = "1272 - words"')
    tg = read_textgrid_words(_write(tmp_path, text.encode("utf-16")))
    assert tg.words == EXPECTED


def _bad(tmp_path: Path, content: str | bytes, match: str) -> str:
    path = _write(tmp_path, content)
    with pytest.raises(UserError, match=match) as info:
        read_textgrid_words(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_missing(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_textgrid_words(tmp_path / "nope.TextGrid")


def test_not_text(tmp_path):
    _bad(tmp_path, b"\x80\x81\x82 binary \xff", "not UTF-8")


def test_unparseable(tmp_path):
    _bad(tmp_path, "hello, I am not a TextGrid\n", "cannot be parsed")
    # Cut inside an interval: its text line is missing.
    _bad(tmp_path, LONG[: LONG.index('text = "QUILTER"')], "cannot be parsed")
    # Cut after the header: no tier at all.
    _bad(tmp_path, LONG[: LONG.index("item []")] + "item []:\n", "has no tiers")


def test_empty(tmp_path):
    _bad(tmp_path, "", "is empty")
    _bad(tmp_path, "  \n\n", "is empty")


def test_no_words_tier_lists_the_tiers(tmp_path):
    message = _bad(tmp_path, LONG.replace('name = "words"', 'name = "orthography"'), "no \"words\" tier")
    assert "'orthography'" in message and "'phones'" in message


def test_end_before_start(tmp_path):
    text = LONG.replace("xmin = 0.5\n            xmax = 0.8", "xmin = 0.5\n            xmax = 0.4")
    message = _bad(tmp_path, text, "ends at 0.4 s before it starts at 0.5 s")
    assert "interval 4" in message and "QUILTER" in message


def test_overlapping(tmp_path):
    # "QUILTER" starts at 0.4, inside "sp" (0.45 - 0.5)... and inside "Mister" (0.12 - 0.45) before it.
    text = LONG.replace("xmin = 0.5\n            xmax = 0.8", "xmin = 0.48\n            xmax = 0.8")
    message = _bad(tmp_path, text, "overlaps")
    assert "interval 4" in message


def test_out_of_order(tmp_path):
    # Swap intervals 4 and 6 (times and labels): "mister" 0.9-1.2 now comes before "QUILTER" 0.5-0.8.
    text = (LONG.replace("xmin = 0.5\n            xmax = 0.8\n            text = \"QUILTER\"", "@A@")
                .replace("xmin = 0.9\n            xmax = 1.2\n            text = \"mister\"", "@B@")
                .replace("@A@", "xmin = 0.9\n            xmax = 1.2\n            text = \"mister\"")
                .replace("@B@", "xmin = 0.5\n            xmax = 0.8\n            text = \"QUILTER\""))
    _bad(tmp_path, text, "out of order")


@pytest.mark.parametrize("tier_names, words", [
    (["phones", "words"], ["hi", "there"]),
    (["1272 - phones", "1272 - words"], ["hi", "there"]),   # MFA's speaker prefix
    (["phones"], None),                                      # no words tier: nothing to compare with
    (["1 - phones", "1 - words", "2 - words"], None),        # two speakers' words: no single transcript
])
def test_another_tier_comes_with_the_words_tier_when_there_is_one(tmp_path, tier_names, words):
    from tests.helpers.textgrids import long_textgrid
    from wordreps.alignments.textgrids import read_textgrid_units

    intervals = [(0.0, 0.5, "Hi"), (0.5, 1.0, "there")]
    path = tmp_path / "a.TextGrid"
    path.write_text(long_textgrid(1.0, {name: intervals for name in tier_names}))
    tier = next(n for n in tier_names if n.endswith("phones"))
    units, transcript_words = read_textgrid_units(path, "phones")
    assert [w.word for w in units.words] == ["Hi", "there"] and units.tier_name == tier  # case kept
    assert (None if transcript_words is None else [w.word for w in transcript_words.words]) == words
