"""`make mutants`: does the test suite notice when a guarantee is broken?

Each named mutation (tools/mutants/mutations.py) replaces one anchored snippet of shared/ with
code that breaks one guarantee of the README, then runs only the tests that tests/README.md's
table says guard that guarantee, against a function host running the mutated code. A mutation is
KILLED when those tests fail, SURVIVED when they pass, STALE when its anchor is no longer in the
code (it must then be updated, not skipped). After the named ones, mutmut generates mutants of
shared/ within a stated time budget and the same kind of run judges each.

Everything happens in a scratch copy of the repository, never in the working tree.
"""
