"""Pass (exit 0) when the expected output (argv[2]) occurs in the answer (argv[1])."""
import sys


def norm(text):
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


sys.exit(0 if norm(sys.argv[2]) in norm(sys.argv[1]) else 1)
