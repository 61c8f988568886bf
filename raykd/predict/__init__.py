"""Scoring files offline (`raykd predict`): rows.py validates rows as every scoring path does, file.py scores a
whole file (or hands a large one to stream.py, which scores it through Ray Data with bounded memory)."""
