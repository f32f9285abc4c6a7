"""The record contract and its I/O: the schema rules, making records, validating them, reading record files,
and THUDM import/export."""
