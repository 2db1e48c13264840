import json

import pytest

from quilt_llava.errors import InputError
from quilt_llava.narratives.transcript import read_transcript, transcript_from_records

SRT = """1
00:00:01,000 --> 00:00:03,500
Here we see the
epithelium.

2
00:00:04,000 --> 00:00:06,250
<i>Note</i> the nuclei.
"""

VTT = """WEBVTT

NOTE a comment block

intro
00:01.000 --> 00:03.500 align:start
Here we see the epithelium.

00:00:04.000 --> 00:00:06.250
Note the nuclei.
"""


def test_srt(tmp_path):
    path = tmp_path / "a.srt"
    path.write_text(SRT)
    t = read_transcript(path)
    assert [(u.start, u.end, u.text) for u in t.utterances] == [
        (1.0, 3.5, "Here we see the epithelium."),
        (4.0, 6.25, "Note the nuclei."),
    ]


def test_vtt_matches_srt(tmp_path):
    (tmp_path / "a.srt").write_text(SRT)
    (tmp_path / "a.vtt").write_text(VTT)
    a, b = read_transcript(tmp_path / "a.srt"), read_transcript(tmp_path / "a.vtt")
    assert [(u.start, u.end, u.text) for u in a.utterances] == [(u.start, u.end, u.text) for u in b.utterances]


def test_whisper_json_with_words(tmp_path):
    data = {
        "text": "hello there",
        "segments": [
            {
                "start": 0.5,
                "end": 1.5,
                "text": " hello there",
                "words": [{"start": 0.5, "end": 0.9, "word": " hello"}, {"start": 1.0, "end": 1.5, "word": " there"}],
            }
        ],
    }
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    t = read_transcript(path)
    assert t.has_words and t.utterances[0].text == "hello there"
    assert [w.text for w in t.utterances[0].words] == ["hello", "there"]


def test_plain_list(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"start": 0, "end": 1, "text": "a b"}, {"start": 1, "end": 2, "text": "c"}]))
    assert read_transcript(path).text() == "a b c"


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("bad.srt", "1\n00:00:01,000 --> 00:00:0x,000\nhi\n", "bad.srt:1"),
        ("bad.srt", "1\nno timing here\nhi\n", "timing"),
        ("bad.vtt", "00:01.000 --> 00:02.000\nhi\n", "WEBVTT"),
        ("over.srt", "1\n00:00:01,000 --> 00:00:05,000\na\n\n2\n00:00:03,000 --> 00:00:06,000\nb\n", "over.srt:5"),
        ("back.json", json.dumps([{"start": 3, "end": 1, "text": "x"}]), "entry[0]"),
        ("type.json", json.dumps([{"start": "0", "end": 1, "text": "x"}]), "'start' must be a number"),
        ("obj.json", json.dumps({"text": "no segments"}), "segments"),
        ("broken.json", "[{", "broken.json:1"),
        ("x.txt", "hello", "unknown transcript type"),
    ],
)
def test_errors_name_file_and_entry(tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as err:
        read_transcript(path)
    assert needle in str(err.value)
    assert name in str(err.value)


def test_overlap_in_records_names_entry():
    with pytest.raises(InputError, match=r"entry\[1\].*overlaps"):
        transcript_from_records([{"start": 0, "end": 2, "text": "a"}, {"start": 1, "end": 3, "text": "b"}])
