"""`python -m modelyard_agent`."""

from __future__ import annotations

from modelyard_agent.cli import main

raise SystemExit(main())
