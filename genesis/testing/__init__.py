"""Testing tools that ship with genesis: the program fuzzer that holds compiled code to eager's results.

`generator.generate(seed)` makes a random program (elementwise math, views,
reductions, matmul, composites, in-place writes, casts) as data;
`runner.run_program` runs it eagerly and compiled on a backend and classifies
the outcome; `shrink.shrink` cuts a failing program down; `python -m
genesis.testing.fuzz` runs a campaign. See `fuzz.py` for the command line.
"""
