"""Lists the shipped learned optimizers and what each is for (console script ``l2l-optimizers``)."""

from __future__ import annotations


def main() -> None:
    from l2l_tf import catalog

    for entry in catalog.list_optimizers():
        print(entry.describe())
        print(f"    {entry.load_snippet()}  # {entry.path}")


if __name__ == "__main__":
    main()
