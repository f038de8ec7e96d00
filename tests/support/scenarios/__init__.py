"""The reliability scenarios (issue 5), each a function with its counts or its case as
arguments, asserting as it goes and returning what it observed: the tests in
``tests/test_reliability_*.py`` run them small, ``make soak`` runs them large."""
