"""write_desired_state: the desired state into DuckDB tables chunk by chunk (issue 12).

Real files and real DuckDB databases under tmp_path. The chunked reading must give exactly what
one chunk gives, whichever parser reads the CSV (csv_stream.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emergency_pipeline.desired_state import (ACCEPTED_COLUMNS, REJECTED_COLUMNS,
                                              DesiredStateError, read_desired_state,
                                              write_desired_state)
from emergency_pipeline.desired_state import csv_stream

ADDR = "1315262044401589175"
TABLES = ("accepted", "rejected", "duplicates", "files")


def tables(con) -> dict[str, list[tuple]]:
    return {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in TABLES}


def write(source, tmp_path: Path, name: str, **kw):
    con = duckdb.connect(str(tmp_path / f"{name}.duckdb"))
    summary = write_desired_state(source, con, **kw)
    return con, summary


def big_csv(path: Path, rows: int = 5000, quoted: bool = False) -> Path:
    """Mixed formats; a bad row (11); an identical copy far from its first (4002 of 22) and a
    conflict (4502 against 32), in other chunks; quoted cells when asked."""
    lines = ["Phone,E911,Address ID,Ticket"]         # lines[k] is source row k + 1
    for i in range(rows):
        phone = f"+1970555{i % 9000 + 1000:04d}" if i % 2 else f"(303) 555-{i % 9000 + 1000:04d}"
        lines.append(f"{phone},{'yes' if i % 3 else 'no'},{ADDR if i % 3 else ''},"
                     + (f'"T,{i}"' if quoted and i % 7 == 0 else f"T{i}"))
    lines[10] = "junk,yes,,T"
    lines[4001] = lines[21]
    lines[4501] = f"(303) 555-1030,yes,{ADDR},T"      # row 32 disables it
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tables_columns_and_types(tmp_path):
    p = big_csv(tmp_path / "d.csv")
    con, summary = write(p, tmp_path, "stage")
    types = {t: dict(con.execute(f"SELECT column_name, data_type FROM information_schema.columns "
                                 f"WHERE table_name = '{t}' ORDER BY ordinal_position").fetchall())
             for t in TABLES}
    assert list(types["accepted"]) == ACCEPTED_COLUMNS
    assert list(types["rejected"]) == REJECTED_COLUMNS
    assert list(types["files"]) == ["source_file", "sheet", "rows", "blank_rows", "accepted",
                                    "rejected_rows", "collapsed"]
    assert types["accepted"]["source_row"] == "BIGINT"
    assert types["accepted"]["emergency_enabled"] == "BOOLEAN"
    assert types["rejected"]["extras"] == "VARCHAR"
    # Nothing of the staging is left behind.
    assert sorted(r[0] for r in con.execute("SHOW TABLES").fetchall()) == sorted(TABLES)
    ds = read_desired_state(p)
    assert summary.counts() == ds.counts()
    assert summary.collapsed_duplicates == 1 and summary.rejected_rows == 3
    assert con.execute("SELECT count(*) FROM accepted").fetchone()[0] == len(ds.accepted)


@pytest.mark.parametrize("quoted", [False, True])    # DuckDB's lines, or pandas' C parser
def test_chunks_give_what_one_chunk_gives(tmp_path, quoted):
    p = big_csv(tmp_path / "d.csv", quoted=quoted)
    assert csv_stream.prepare(p, tmp_path).plain is not quoted
    one, s1 = write(p, tmp_path, "one", chunk_rows=1_000_000)
    many, s2 = write(p, tmp_path, "many", chunk_rows=700)
    assert s1 == s2
    assert tables(one) == tables(many)
    conflict = many.execute("SELECT source_row, reason FROM rejected WHERE reason LIKE "
                            "'conflicting%'").fetchall()
    assert [r for r, _ in conflict] == [32, 4502]
    assert "row 4502 (" in conflict[0][1] and "row 32 (" in conflict[1][1]
    assert many.execute("SELECT source_row, duplicate_of_row FROM duplicates").fetchall() == \
        [(4002, 22)]


def test_a_parser_given_up_mid_file_leaves_nothing_behind(tmp_path):
    # Quoted cells: pandas' C parser reads the first chunks, then meets a row wider than the
    # first and gives up; the csv module reads the file again, padded to the widest row.
    p = big_csv(tmp_path / "d.csv", quoted=True)
    p.write_text(p.read_text() + "+19705550000,no,,T,extra\n")
    one, _ = write(p, tmp_path, "one", chunk_rows=1_000_000)
    many, summary = write(p, tmp_path, "many", chunk_rows=500)
    assert tables(one) == tables(many)
    assert summary.input_rows == 5001
    extras = many.execute("SELECT extras FROM accepted WHERE source_row = 5002").fetchone()[0]
    assert json.loads(extras) == {"Ticket": "T", "column_5": "extra"}


PLAIN_CELLS = st.sampled_from(["+19705555098", "(970) 555-5099", "yes", "no", ADDR, "", " ",
                               " x ", "\t", "é", "1.97E+10", "a;b", "'q'"])


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(st.lists(PLAIN_CELLS, min_size=1, max_size=5), min_size=1, max_size=30),
       sep=st.sampled_from([",", ";", "\t"]), crlf=st.booleans(), chunk=st.integers(1, 7))
def test_duckdb_lines_agree_with_the_csv_parsers(tmp_path_factory, rows, sep, crlf, chunk):
    # A plain file (no quote, no empty line) split by DuckDB must give the grids that pandas'
    # C parser (when it reads the file) and the csv module give.
    text = ("\r\n" if crlf else "\n").join(sep.join(r) for r in rows) + "\n"
    if not text.strip("\r\n") or "\n\n" in text.replace("\r", "") or text.startswith(("\n", "\r")):
        return
    folder = tmp_path_factory.mktemp("g")
    (folder / "g.csv").write_text(text, newline="")
    prepared = csv_stream.prepare(folder / "g.csv", folder)
    assert prepared.plain
    duck, pandas_, csv_ = (csv_stream.parsers(prepared, chunk)[i] for i in range(3))

    def cells(parser):
        frames = [(g, first) for g, first in parser()]
        return pd.concat([g for g, _ in frames], ignore_index=True).values.tolist(), \
            [first for _, first in frames]

    got = cells(duck)[0]
    assert got == cells(csv_)[0]
    try:
        assert got == cells(pandas_)[0]
    except csv_stream.Reparse:
        pass                                    # ragged rows: pandas gives up, as it should


def test_large_files_in_another_encoding_are_transcoded_streaming(tmp_path, monkeypatch):
    p = tmp_path / "d.csv"
    body = "".join(f"+1970555{i:04d},no,Café {i}\n" for i in range(2000))
    p.write_bytes(("phone,enabled,site\n" + body).encode("cp1252"))
    whole = read_desired_state(p)
    # Past SAMPLE bytes, the encoding is told from the first SAMPLE and the rest streams.
    monkeypatch.setattr(csv_stream, "SAMPLE", 4096)
    monkeypatch.setattr(csv_stream, "BLOCK", 1000)
    streamed = read_desired_state(p)
    assert streamed.accepted.equals(whole.accepted)
    assert json.loads(streamed.accepted.extras.iloc[-1]) == {"site": "Café 1999"}
    p.write_bytes(("phone,enabled,site\n" + body).encode("cp1252") + b"\x81\x8d,no\n")
    with pytest.raises(DesiredStateError, match="encoding"):
        read_desired_state(p)


def test_duckdb_source_streams_with_row_numbers(tmp_path):
    db = tmp_path / "src.duckdb"
    src = duckdb.connect(str(db))
    src.execute("CREATE TABLE desired AS SELECT CASE WHEN i % 1000 = 7 THEN NULL ELSE "
                "'+1970555' || lpad((i % 10000)::VARCHAR, 4, '0') END AS tn, "
                "CASE WHEN i % 1000 = 7 THEN NULL ELSE false END AS enabled "
                "FROM range(5000) t(i)")
    src.close()
    con, summary = write(db, tmp_path, "stage", table="desired", chunk_rows=2048)
    assert summary.input_rows == 4995 and summary.blank_rows == 5
    rows = [r[0] for r in con.execute("SELECT source_row FROM accepted").fetchall()]
    assert rows == [i + 1 for i in range(5000) if i % 1000 != 7]


def test_a_refused_source_writes_no_table(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("phone,enabled\njunk,no\n+19705555098,maybe\n")
    con = duckdb.connect(str(tmp_path / "stage.duckdb"))
    with pytest.raises(DesiredStateError, match="no usable row, all 2 rejected"):
        write_desired_state(p, con)
    assert con.execute("SHOW TABLES").fetchall() == []
    summary = write_desired_state(p, con, require_rows=False)
    assert summary.rejected_rows == 2 and summary.accepted == 0
