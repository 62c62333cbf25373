"""The ground floor every other part of sftlens builds on; it imports nothing else from sftlens.

- :mod:`.record`: the records (:class:`Example`, :class:`Sample`) and strict JSONL I/O with atomic writes.
- :mod:`.format`: the text format (prompt, completion, answer line) and answer parsing.
- :mod:`.errors`: the one error hierarchy the CLI turns into a sentence and exit status 2.
- :mod:`.console`: the rich console and progress-bar factory.
"""
