"""The db split: SQL tasks on SQLite or MariaDB, AgentBench DB files, Spider/BIRD task derivation, self-instruct."""
