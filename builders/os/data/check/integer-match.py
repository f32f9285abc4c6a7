"""Pass (exit 0) when the answer (argv[1]) and the expected output (argv[2]) are the same integer."""
import sys


def as_int(text):
    try:
        return int(text.strip())
    except ValueError:
        return None


answer, expected = as_int(sys.argv[1]), as_int(sys.argv[2])
sys.exit(0 if answer is not None and answer == expected else 1)
