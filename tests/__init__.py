"""odetx's tests: a package, so that ``tests.conftest`` and ``tests.problems`` import."""
