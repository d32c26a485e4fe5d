"""Functions named by `schedule.fn` in the tests (loaded by file path, as a user's would be)."""


def decay_10pct(n: int) -> float:
    return 0.9 ** n


def linear_decay(n: int) -> float:
    return max(0.0, 1.0 - n / 40)


def broken(n: int) -> float:
    raise ZeroDivisionError("division by zero")


def not_a_number(n: int) -> str:
    return "fast"


NOT_CALLABLE = 3
