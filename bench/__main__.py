"""``python -m bench``: run the whole benchmark (see ``bench.config`` for the flags)."""

from bench.runner import main

raise SystemExit(main())
