"""``python -m calibnet.engines`` (see cli.py)."""

from .cli import main

raise SystemExit(main())
