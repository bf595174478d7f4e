# uota.cfg: read without eval (literals only), and checked the same way for the device's
# own file and for a release's, so that no release can leave a device unable to update.
# Loaded to read the device's file, and again after the archive's check: the delete list,
# and the release's uota.cfg merged with the device's own settings.

from ._core import _OWN_FILES, _RECORDS, _TMP_SUFFIX, DownloadError, VerifyError, _finish_rename, _is_link, _read_text
from ._paths import _excluded, _parents, _safe_path
from ._url import _check_headers, _split_url



def parse_cfg(text):
    # Read the uota.cfg dict literal without eval: literals only, code is refused.
    try:
        value, pos = _literal(text, _skip(text, 0), 0)
    except (ValueError, TypeError) as e:  # a bad escape, an unhashable key
        raise VerifyError("uota.cfg: %s" % e)
    if _skip(text, pos) != len(text):
        raise VerifyError("uota.cfg: unexpected text at offset %d" % pos)
    if not isinstance(value, dict):
        raise VerifyError("uota.cfg must be a dict")
    return value


def _skip(text, pos):
    # whitespace and comments
    n = len(text)
    while pos < n:
        c = text[pos]
        if c == "#":
            while pos < n and text[pos] != "\n":
                pos += 1
        elif c in " \t\r\n":
            pos += 1
        else:
            break
    return pos


_CLOSE = {"{": "}", "[": "]", "(": ")"}


_WORDS = {"True": True, "False": False, "None": None}


def _literal(text, pos, depth):
    if pos >= len(text):
        raise VerifyError("uota.cfg: unexpected end")
    if depth > 8:
        raise VerifyError("uota.cfg: nested too deeply")
    c = text[pos]
    if c in _CLOSE:
        return _container(text, pos + 1, c, depth + 1)
    if c in "'\"":
        return _string(text, pos)
    end = pos
    while end < len(text) and (text[end].isalpha() or text[end].isdigit() or text[end] in "_.+-"):
        end += 1
    word = text[pos:end]
    if word in _WORDS:
        return _WORDS[word], end
    try:
        return (float(word) if "." in word or "e" in word else int(word)), end
    except ValueError:
        raise VerifyError("uota.cfg: not a literal at offset %d: %r" % (pos, text[pos : pos + 20]))


def _container(text, pos, opener, depth):
    items = []
    closer = _CLOSE[opener]
    comma = False
    while True:
        pos = _skip(text, pos)
        if pos < len(text) and text[pos] == closer:
            break
        key, pos = _literal(text, pos, depth)
        pos = _skip(text, pos)
        if opener == "{":
            if pos >= len(text) or text[pos] != ":":
                raise VerifyError("uota.cfg: expected ':' at offset %d" % pos)
            value, pos = _literal(text, _skip(text, pos + 1), depth)
            items.append((key, value))
            pos = _skip(text, pos)
        else:
            items.append(key)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            comma = True
        elif pos >= len(text) or text[pos] != closer:
            raise VerifyError("uota.cfg: expected ',' or %r at offset %d" % (closer, pos))
    if opener == "{":
        return dict(items), pos + 1
    if opener == "(" and len(items) == 1 and not comma:
        return items[0], pos + 1  # as in Python: (x) is x, (x,) a tuple
    return (items if opener == "[" else tuple(items)), pos + 1


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def _string(text, pos):
    quote = text[pos]
    out = []
    pos += 1
    while pos < len(text):
        c = text[pos]
        if c == quote:
            return "".join(out), pos + 1
        if c == "\n":
            break
        if c == "\\" and pos + 1 < len(text):
            e = text[pos + 1]
            if e == "x":
                c = chr(int(text[pos + 2 : pos + 4], 16))
                pos += 2
            elif e in _ESCAPES and not (e == "0" and text[pos + 2 : pos + 3].isdigit()):  # Python: octal
                c = _ESCAPES[e]
            else:
                raise VerifyError("uota.cfg: unknown escape at offset %d" % pos)
            pos += 1
        out.append(c)
        pos += 1
    raise VerifyError("uota.cfg: unterminated string")


def _read_cfg():
    return check_cfg(_parse_own())


def _parse_own():
    # the device's uota.cfg as written: check_cfg rewrites some values
    _finish_rename("uota.cfg")
    text = _read_text("uota.cfg")
    if text is None:
        raise VerifyError("cannot read uota.cfg")
    return parse_cfg(text)


def check_cfg(cfg):
    # cfg with its paths canonical (excluded_files lower-cased), or VerifyError.
    #
    # The device's own uota.cfg and a release's pass the same checks, so that no release
    # can leave a device that cannot read its configuration or update again.
    for key in ("url", "tmp_filename"):
        if not isinstance(cfg.get(key), str) or not cfg[key]:
            raise VerifyError("uota.cfg: %s must be a non-empty string" % key)
    for key, kind in (("excluded_files", (list, tuple)), ("delete", (list, tuple)), ("headers", dict), ("local", (list, tuple)), ("timeout", (int, float)), ("min_rate", (int, float)), ("keys", (list, tuple)), ("pins", (list, tuple)), ("require_hash", bool), ("report", bool), ("trial_boots", int), ("retries", int)):
        if key in cfg and not isinstance(cfg[key], kind):
            raise VerifyError("uota.cfg: %s has the wrong type" % key)
    if not 0 < cfg.get("timeout", 10) <= 3600 or not 0 < cfg.get("min_rate", 256) < 1 << 29:
        raise VerifyError("uota.cfg: timeout or min_rate out of range")
    if not 0 <= cfg.get("trial_boots", 0) <= 100 or not 0 <= cfg.get("retries", 0) <= 10:
        raise VerifyError("uota.cfg: trial_boots must be 0 to 100, retries 0 to 10")
    try:
        _split_url(cfg["url"])
    except DownloadError as e:
        raise VerifyError("uota.cfg: %s" % e)
    _check_headers(cfg.get("headers", {}))
    tmp = _safe_path(cfg["tmp_filename"]).lower()
    if not tmp or _excluded(tmp, _OWN_FILES + _RECORDS) or tmp.endswith(_TMP_SUFFIX):
        raise VerifyError("uota.cfg: tmp_filename may not be %r" % cfg["tmp_filename"])
    cfg["excluded_files"] = [entry.lower() for entry in _entries(cfg, "excluded_files")]
    cfg["delete"] = _entries(cfg, "delete")
    if "keys" in cfg:
        cfg["keys"] = _entries(cfg, "keys")
    for pin in cfg.get("pins", ()):
        if not isinstance(pin, str) or len(pin) != 64 or any(c not in "0123456789abcdefABCDEF" for c in pin):
            raise VerifyError("uota.cfg: pins are SHA-256 hashes, 64 hex digits each")
    if not cfg["url"].endswith("/"):
        cfg["url"] += "/"
    return cfg


def _entries(cfg, key):
    # cfg[key] as canonical paths, none of them the root.
    out = []
    for entry in cfg.get(key, ()):
        if not isinstance(entry, str) or not _safe_path(entry):
            raise VerifyError("uota.cfg: %s entries must be paths below the root" % key)
        out.append(_safe_path(entry))
    return out


_TO_HTTP = "uota.cfg: the release moves updates from https to plain http; its uota.cfg must say 'allow_http': True for that"


def moves_to_http(url, new):
    # Whether the release uota.cfg `new` moves a device polling `url` from https to plain
    # http without saying 'allow_http': True (`uota check` reports it with this rule).
    return url.startswith("https:") and not new["url"].startswith("https:") and new.get("allow_http") is not True


def _with_own_settings(new):
    # (the text of the release's uota.cfg `new` with the device's own settings kept, None
    # when they change nothing; that configuration, checked): its device_id, headers and the
    # keys it lists under local keep their values, and its excluded_files stay excluded.
    own = _parse_own()
    merged = dict(new)
    for key in ("device_id", "headers", "local") + tuple(own.get("local", ())):
        if key in own:
            merged[key] = own[key]
    excluded = list(new.get("excluded_files", ()))
    for entry in own.get("excluded_files", ()):
        if entry not in excluded:
            excluded.append(entry)
    if excluded:
        merged["excluded_files"] = excluded
    if merged == new:
        return None, check_cfg(merged)
    text = repr(merged)
    return text, check_cfg(parse_cfg(text))  # what the install will write must read back


def plan_cfg(release_cfg, cfg, dropped):
    # (the delete list the install applies, the uota.cfg text it writes or None to write
    # the release's as it is, the configuration the device has after the install or None
    # when it keeps its own). release_cfg: the release's uota.cfg text, None when it has none.
    #
    # The delete list is the release's, else the device's; VerifyError if it names what it may
    # not (the key files the device trusts after the install among them), if the release moves
    # updates from https to http without saying 'allow_http': True (a pinned device could
    # never update again), or if it drops the keys of a device that checks signatures. Then
    # each file of `dropped` (the previous release's that this one does not ship) that the
    # delete list may name, ":"-prefixed: the install removes it only while it is a file.
    final = None
    if release_cfg is None:
        delete, text = cfg["delete"], None
    else:
        new = parse_cfg(release_cfg)
        delete = check_cfg(dict(new))["delete"]
        if moves_to_http(cfg["url"], new):
            raise VerifyError(_TO_HTTP)
        text, final = _with_own_settings(new)
        if cfg.get("keys") and not final.get("keys"):
            raise VerifyError("uota.cfg: the release lists no keys: this device would stop checking signatures")
    keys = tuple(path.lower() for path in (final or cfg).get("keys", ()))
    kept = (cfg["tmp_filename"].lower(),) + _RECORDS + _OWN_FILES + tuple(cfg["excluded_files"]) + keys
    for entry in delete:
        why = _kept(entry, kept)
        if why:
            raise VerifyError(why)
    return list(delete) + [":" + path for path in dropped if not _kept(path, kept)], text, final


def _kept(entry, kept):
    # Why the install may not remove entry, or None.
    key = entry.lower()
    for name in kept:  # neither the entry, nor a folder holding it, nor one under it
        if _excluded(key, (name,)) or _excluded(name, (key,)):
            return "uota.cfg: delete may not name %r" % entry
    for step in _parents(entry):
        if step != entry and _is_link(step):
            return "uota.cfg: delete may not reach through the link %r" % step
    return None
