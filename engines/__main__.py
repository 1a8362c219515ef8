"""``python -m calibnet.engines`` (see cli.py)."""

from ..cli.engines import main

raise SystemExit(main())
