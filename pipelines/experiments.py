"""`dvc exp run` arguments from params changes: what an ablation row or a profile sets.

DVC parses `-S` with Hydra's override grammar: `++key=value` sets a leaf of params.yaml (adding it
where the file lacks it) and `~key` drops one. A value written as JSON means what it says there:
numbers, booleans, null, quoted strings, lists.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from lawm.config import leaves


def set_param_args(changed: dict[str, Any], dropped: Iterable[str] = ()) -> list[str]:
    """`-S ++key=value` for each changed dotted key (a dict value sets each of its leaves) and
    `-S ~key` for each dropped one."""
    flat = leaves(changed)
    return ([arg for key, value in flat.items() for arg in ("-S", f"++{key}={json.dumps(value)}")]
            + [arg for key in dropped for arg in ("-S", f"~{key}")])
