"""A small fan-out / fan-in workflow: square 0..n-1 in parallel, then sum the squares.

lazyflow run demo.py main --n 200     # first run: 202 calls execute
lazyflow run demo.py main --n 200     # second run: served from the cache
lazyflow run demo.py main --n 201     # one new square; the sum re-runs
lazyflow log                          # what ran, and what was reused
"""

from lazyflow_core import task


@task
def square(x: int) -> int:
    return x * x


@task
def total(values: list[int]) -> int:
    return sum(values)


@task
def main(n: int = 100) -> int:
    """Sum of the squares of 0..n-1, one task call per square."""
    return total([square(i) for i in range(n)])


if __name__ == "__main__":
    from lazyflow_core import run

    print(run(main(10)))
