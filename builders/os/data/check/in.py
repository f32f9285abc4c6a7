"""Pass (exit 0) when the answer (argv[1]) occurs in the expected output (argv[2])."""
import sys


def norm(text):
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


sys.exit(0 if norm(sys.argv[1]) in norm(sys.argv[2]) else 1)
