# uota.status(): what an application may report about its updates. Loaded only by it.

from ._core import _read_state, _read_version
from ._trial import trial


def status(error):
    # uota.status()'s dict, with `error` as this boot's last error.
    state = _read_state()
    phase, version = state[:2] if state else (None, None)
    on_trial = trial()
    return {"version": _read_version(), "pending": version if phase in ("partial", "ready") else None,
            "failed": version if phase == "failed" else None, "error": error,
            "trial": on_trial is not None, "boots_left": max(on_trial[0] - on_trial[3], 0) if on_trial else None}
