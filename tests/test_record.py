import json

import pytest

from sftlens.core.record import Example, RecordError, read_jsonl, write_jsonl


def _write(tmp_path, lines):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_roundtrip(tmp_path):
    exs = [Example(id="a", task="t", question="q?", steps=["s1", "s2"], answer="3", instruction="do", meta={"k": 1})]
    p = tmp_path / "x.jsonl"
    assert write_jsonl(p, exs) == 1
    assert read_jsonl(p) == exs
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


@pytest.mark.parametrize("line,where", [
    ('{"id": "1", "question": "q", "answer": "1"', "not valid JSON"),
    ('{"id": "1", "answer": "1"}', "field 'question': missing"),
    ('{"id": "1", "question": "q", "answer": "1", "steps": "s"}', "field 'steps': expected a list of strings"),
    ('{"id": "1", "question": "q", "answer": "1", "steps": [1]}', "field 'steps'"),
    ('{"id": "1", "question": "q", "answer": "1", "colour": "red"}', "field 'colour': unknown"),
    ('[1, 2]', "expected a JSON object"),
])
def test_malformed_line_names_file_line_field(tmp_path, line, where):
    good = json.dumps({"id": "0", "question": "q", "answer": "1"})
    p = _write(tmp_path, [good, line])
    with pytest.raises(RecordError) as e:
        read_jsonl(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:2: ")
    assert where in msg


def test_empty_steps_rejected_when_required(tmp_path):
    p = _write(tmp_path, [json.dumps({"id": "0", "question": "q", "answer": "1", "steps": []})])
    assert read_jsonl(p)[0].steps == []
    with pytest.raises(RecordError, match=r":1: field 'steps': empty"):
        read_jsonl(p, require_steps=True)


def test_duplicate_ids(tmp_path):
    row = json.dumps({"id": "0", "question": "q", "answer": "1"})
    with pytest.raises(RecordError, match=r":2: field 'id': duplicate '0' \(first on line 1\)"):
        read_jsonl(_write(tmp_path, [row, row]))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "x.jsonl"
    write_jsonl(p, [Example(id="a", task="t", question="q", answer="1")])
    before = p.read_text()

    class Boom:
        def to_dict(self):
            raise RuntimeError("boom")

    with pytest.raises(Exception):
        write_jsonl(p, [{"id": "b", "question": "q", "answer": "1"}, {"bad": object()}])
    assert p.read_text() == before


def test_written_files_are_as_readable_as_plain_open_makes_them(tmp_path):
    """Atomic writes go through mkstemp (mode 0600): the JSONL files and the report's figures must end
    with the umask's mode, as a plain open() would leave them, or a shared run folder is unreadable."""
    import os

    from sftlens.core.record import process_umask
    from sftlens.report.figures import grouped_bars

    expected = 0o666 & ~process_umask()
    write_jsonl(tmp_path / "a.jsonl", [Example(id="1", task="t", question="q", answer="1")])
    png = grouped_bars(tmp_path / "f.png", ["x", "y"], {"m": [0.1, 0.2]}, ylabel="%", title="t")
    assert png.read_bytes()[:4] == b"\x89PNG"
    for p in (tmp_path / "a.jsonl", png):
        assert os.stat(p).st_mode & 0o777 == expected, p
