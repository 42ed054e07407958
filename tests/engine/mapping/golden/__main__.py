"""``python -m tests.engine.mapping.golden [--update] [MapperClass ...]``: check the mappers against their
golden corpora, or record the current output after a ``MAPPING_VERSION`` bump (see the package)."""

from __future__ import annotations

import argparse
import sys

from tests.engine.mapping.golden import NeedsBump, check, dumps, load, mappers, path_of, updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.engine.mapping.golden", description=__doc__)
    parser.add_argument("--update", action="store_true", help="record the current output and version")
    parser.add_argument("names", nargs="*", help="mapper classes (default: all)")
    args = parser.parse_args(argv)
    chosen = [cls for cls in mappers() if not args.names or cls.__name__ in args.names]
    unknown = set(args.names) - {cls.__name__ for cls in chosen}
    if unknown:
        parser.error(f"no mapper named {sorted(unknown)}")
    failed = 0
    for cls in chosen:
        if not path_of(cls).exists():
            print(f"{cls.__name__}: no corpus at {path_of(cls)}: add raw records first")
            failed += 1
            continue
        golden = load(cls)
        if not args.update:
            result = check(cls, golden)
            print(result.explain())
            failed += not result.ok
            continue
        try:
            new = updated(cls, golden)
        except NeedsBump as refused:
            print(f"refused: {refused}")
            failed += 1
            continue
        if new != golden:
            path_of(cls).write_text(dumps(new))
            print(
                f"{cls.__name__}: recorded version {new['version']} ({sum(len(c['records']) for c in new['cases'])} records)"
            )
        else:
            print(f"{cls.__name__}: unchanged")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
