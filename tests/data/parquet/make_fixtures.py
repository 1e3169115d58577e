"""Writes the Parquet word-list fixtures of tests/embeddings/test_text_glove_pairs.py with pyarrow (not a project
dependency).

    python -m venv /tmp/pq && /tmp/pq/bin/pip install pyarrow==25.0.1 && /tmp/pq/bin/python make_fixtures.py

Each file holds WORDS (plus what its name says) and is written with pyarrow's own writer under different
settings, so the reader in wordreps/common/parquet.py is checked against real Parquet files, not its own idea
of the format. words.txt holds WORDS one a line (the expected content).
"""
import pyarrow as pa
import pyarrow.parquet as pq

# non-ASCII, empty-looking punctuation, a long word, repeats (a dictionary with reuse), 300 rows so that
# small pages and row groups split them
BASE = ["the", ",", ".", "naïve", "café", "'s", "über", "日本", "x" * 300, "and"]
WORDS = [f"{w}{i // len(BASE)}" if i >= len(BASE) else w for i, w in enumerate(BASE * 30)]
table = pa.table({"index": pa.array(WORDS, pa.string())})

pq.write_table(table, "snappy_dict_v1.parquet", compression="snappy", data_page_version="1.0")
pq.write_table(table, "gzip_dict_v2_pages.parquet", compression="gzip", data_page_version="2.0",
               data_page_size=512, row_group_size=120)
pq.write_table(table, "plain_uncompressed_v1.parquet", compression="none", use_dictionary=False,
               data_page_version="1.0", data_page_size=700, row_group_size=77)
pq.write_table(table, "plain_snappy_v2.parquet", compression="snappy", use_dictionary=False,
               data_page_version="2.0")
pq.write_table(pa.table({"index": pa.array(WORDS, pa.large_string())}), "large_string.parquet")
pq.write_table(pa.table({"rank": pa.array(range(len(WORDS))), "word": pa.array(WORDS)}), "two_columns.parquet")
pq.write_table(pa.table({"a": pa.array(["x", "y"]), "b": pa.array(["p", "q"])}), "two_string_columns.parquet")
pq.write_table(pa.table({"index": pa.array(["a", None, "c"], pa.string())}), "with_null.parquet")
pq.write_table(table.slice(0, 20), "zstd.parquet", compression="zstd")
with open("words.txt", "w", encoding="utf-8") as fh:
    fh.write("\n".join(WORDS) + "\n")
