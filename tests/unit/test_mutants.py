"""The mutant set of tests/mutants/ still matches the code: every snippet is found exactly once,
and every test a mutant runs is cited by docs/guarantees.md. (Running the mutants is
``make mutants``, in CI after ``make test``.) When this fails after a refactor, move the
snippet in tests/mutants/mutants.py to the code's new place — the same fault."""

from __future__ import annotations

from tests.mutants.run import MUTANTS, problems


def test_every_mutant_snippet_is_found_once_and_its_tests_are_cited() -> None:
    assert len(MUTANTS) >= 10
    wrong = problems()
    assert not wrong, "\n".join(wrong)
