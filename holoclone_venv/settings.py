"""Settings of one seeding run, resolved from flags, virtualenv's config and the environment.

Precedence for the strategy (highest first):

1. ``--holoclone-strategy NAME`` on the command line,
2. ``VIRTUALENV_HOLOCLONE_STRATEGY`` or ``holoclone_strategy`` in virtualenv.ini
   (virtualenv itself maps both onto the flag),
3. ``RCC_HOLOTREE_STRATEGY``,
4. ``smart``.

This module is imported while virtualenv parses arguments, so it only uses
the standard library's lightest modules, and never loads plugins: a name
that is not built in is checked against the plugins' strategies by the
policy (:func:`holoclone_venv.policy.strategy_names`).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple, Sequence

from .errors import ConfigError

#: Built-in strategies: name -> one-line description.  Third-party plugins add more.
BUILTIN_STRATEGIES: dict[str, str] = {
    "smart": "reflink where the filesystem clones, else hardlink (never for excluded files), else copy",
    "reflink": "reflink, else copy",
    "hardlink": "hardlink (never for excluded files), else copy",
    "copy": "always copy",
    "snapshot": "site-packages as one snapshot of a template (btrfs); else as smart",
}
DEFAULT_STRATEGY = "smart"
RCC_ENV = "RCC_HOLOTREE_STRATEGY"
STORE_ENV = "VIRTUALENV_HOLOCLONE_STORE"
#: Seconds a run waits for a store lock before it gives up with a message.
DEFAULT_LOCK_TIMEOUT = 300.0
LOCK_TIMEOUT_ENV = "VIRTUALENV_HOLOCLONE_LOCK_TIMEOUT"


class Default(str):
    """An option's default as ``--help`` shows it (the real store path, the real strategy), never a user's choice.

    argparse prints the default value itself; a plain ``None`` would read "default: None".  Settings
    treat a value of this type as "not given", so the precedence below still decides.  Only
    :meth:`shown` makes one: virtualenv converts ``VIRTUALENV_*`` and virtualenv.ini values by calling
    the default's type, and ``Default(value)`` therefore returns a plain ``str``, a choice.
    """

    def __new__(cls, value: object = "") -> str:  # type: ignore[misc]
        return str(value)

    @classmethod
    def shown(cls, value: str) -> Default:
        """The default to show in ``--help``."""
        return str.__new__(cls, value)


class Settings(NamedTuple):
    """Everything the seeding run needs to know besides the environment itself."""

    store: str
    strategy: str  # normalized: stripped and lower-cased
    strategy_source: str  # where the name came from, for messages
    strict: bool = False
    excludes: tuple[str, ...] = ()
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    requirements: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    refresh: bool = False  # resolve requirement sets again instead of reusing the cached resolution
    strategy_typed: str = ""  # the name as the user wrote it, for messages
    remote: str = ""  # URL of a remote store tried on a local miss (holoclone_venv.remote)
    trusted_keys: tuple[str, ...] = ()  # NAME:BASE64 public keys whose signatures a remote's documents need

    @property
    def needs_plugins_for_strategy(self) -> bool:
        """True when the strategy is not built in, so only the plugins can say whether it exists."""
        return self.strategy not in BUILTIN_STRATEGIES


def default_store() -> str:
    """The per-user store location: ``<user cache dir>/holoclone/store``."""
    # platformdirs is a virtualenv dependency and already imported by it.
    from platformdirs import user_cache_dir

    return os.path.join(user_cache_dir("holoclone", appauthor=False), "store")


def strategy_from(cli_value: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """Pick the strategy name and say where it came from.

    ``cli_value`` is what virtualenv parsed for ``--holoclone-strategy`` (it
    already folds in ``VIRTUALENV_HOLOCLONE_STRATEGY`` and virtualenv.ini).
    Returns ``(name as written, source)``; the name is not validated
    (third-party names are only known once plugins load).
    """
    if cli_value is not None:
        if env.get("VIRTUALENV_HOLOCLONE_STRATEGY") == cli_value:
            source = "VIRTUALENV_HOLOCLONE_STRATEGY"
        elif _ini_value(env, "holoclone_strategy") == cli_value:
            source = "holoclone_strategy in virtualenv.ini (or --holoclone-strategy)"
        else:
            source = "--holoclone-strategy"
        return cli_value, source
    rcc = env.get(RCC_ENV)
    if rcc is not None:
        return rcc, RCC_ENV
    return DEFAULT_STRATEGY, "default"


def normalize_strategy(name: str) -> str:
    return name.strip().lower()


def check_strategy(typed: str, source: str, known: Sequence[str]) -> None:
    """Raise :class:`ConfigError` unless ``typed`` names one of ``known``, suggesting the closest."""
    name = normalize_strategy(typed)
    if name in known:
        return
    if not name:
        raise ConfigError(f"the holoclone strategy name is empty (from {source}).",
                          f"Valid strategies: {', '.join(known)}.")
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    guess = f"Did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown holoclone strategy {typed!r} (from {source}).",
                      f"{guess}Valid strategies: {', '.join(known)}.")


def _ini_value(env: Mapping[str, str], key: str) -> str | None:
    """The raw value of ``key`` in virtualenv.ini's [virtualenv] section, if any."""
    from .virtualenv_config import VirtualenvConfig

    return VirtualenvConfig(env, report=False).ini_raw(key)  # an unreadable ini is virtualenv's to report


def settings_from_options(options: object) -> Settings:
    """Build :class:`Settings` from virtualenv's parsed options.

    Raises :class:`ConfigError` for an empty strategy name, an empty store
    path or exclusion pattern, a non-positive lock timeout, or a lock timeout
    in ``VIRTUALENV_HOLOCLONE_LOCK_TIMEOUT`` or virtualenv.ini that is no
    number (virtualenv drops it).  Options still at a :class:`Default` count
    as not given.  Whether a name that is not built in exists is for the
    policy to say (it loads the plugins).
    """
    env: Mapping[str, str] = getattr(options, "env", None) or os.environ
    cli_value = _given(getattr(options, "holoclone_strategy", None))
    env_value = env.get("VIRTUALENV_HOLOCLONE_STRATEGY")
    if cli_value is None and env_value is not None:
        # virtualenv drops an env value it cannot convert; never ignore one silently.
        cli_value = env_value
    typed, source = strategy_from(cli_value, env)
    if not normalize_strategy(typed):
        check_strategy(typed, source, list(BUILTIN_STRATEGIES))
    given_store = _given(getattr(options, "holoclone_store", None))
    if given_store is not None and not str(given_store).strip():
        raise ConfigError("the holoclone store path given is empty ('').",
                          "Name a directory, or leave the option out for the default store.")
    store = given_store or env.get(STORE_ENV) or default_store()
    raw_excludes = getattr(options, "holoclone_exclude", None)
    items = [raw_excludes] if isinstance(raw_excludes, str) else list(raw_excludes or ())
    if any(isinstance(item, str) and not item.strip() for item in items):
        raise ConfigError("an empty --holoclone-exclude pattern matches nothing.", "Remove it or give a glob.")
    excludes = _values(raw_excludes)
    timeout = float(getattr(options, "holoclone_lock_timeout", DEFAULT_LOCK_TIMEOUT))
    if timeout == DEFAULT_LOCK_TIMEOUT:  # the default: perhaps because virtualenv dropped a bad value
        _check_number(env, LOCK_TIMEOUT_ENV, "holoclone_lock_timeout")
    if not timeout > 0:
        raise ConfigError(f"--holoclone-lock-timeout must be positive, got {timeout}.")
    return Settings(
        store=os.path.abspath(os.path.expanduser(str(store))),
        strategy=normalize_strategy(typed),
        strategy_source=source,
        strategy_typed=typed,
        strict=bool(getattr(options, "holoclone_strict", False)),
        excludes=tuple(p.strip() for p in excludes),
        lock_timeout=timeout,
        requirements=_values(getattr(options, "holoclone_requirements", None)),
        packages=_values(getattr(options, "holoclone_package", None)),
        refresh=bool(getattr(options, "holoclone_refresh", False)),
        remote=check_remote_url(str(_given(getattr(options, "holoclone_remote", None))
                                    or env.get("VIRTUALENV_HOLOCLONE_REMOTE") or "").strip()),
        trusted_keys=_keys(_given(getattr(options, "holoclone_trusted_keys", None))
                           or env.get("VIRTUALENV_HOLOCLONE_TRUSTED_KEYS")),
    )


def _given(value: Any) -> Any:
    """None for an option left at its default (:class:`Default`), else the value."""
    return None if isinstance(value, Default) else value


def _check_number(env: Mapping[str, str], variable: str, ini_key: str) -> None:
    """Refuse a number setting virtualenv could not convert: it would drop it and use the default, silently."""
    for value, where in ((env.get(variable), variable), (_ini_value(env, ini_key), f"{ini_key} in virtualenv.ini")):
        if not value or not value.strip():
            continue
        try:
            float(value)
        except ValueError:
            raise ConfigError(f"{where}={value!r} is not a number of seconds.",
                              "Set it to a positive number such as 300, or remove it.") from None


def check_remote_url(url: str) -> str:
    """``url`` when it is a remote store's URL holoclone can open ('' too: no remote); raises :class:`ConfigError`.

    Checked where options are read, so a malformed URL stops virtualenv
    before the environment directory is made, not midway with a traceback.
    """
    if not url:
        return url
    from urllib.parse import urlsplit

    problem = ""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
            problem = "" if parts.hostname else "names no host"
        elif scheme == "s3":
            problem = "" if parts.netloc else "names no bucket"
        elif scheme == "file":
            problem = "" if parts.netloc in ("", "localhost") and parts.path else "is not file:///absolute/directory"
        else:
            problem = "is not a file://, http(s):// or s3:// URL"
    except ValueError as error:  # an unclosed [IPv6 host, a port that is not a number
        problem = f"is malformed ({error})"
    if problem:
        raise ConfigError(f"the remote {url[:200]!r} {problem}.", "Example: --holoclone-remote s3://my-bucket/holoclone")
    return url


def _keys(value: object) -> tuple[str, ...]:
    """Trusted keys: comma-, space- or newline-separated ``NAME:BASE64`` items (checked when a remote is used)."""
    import re

    return tuple(item for raw in _values(value) for item in re.split(r"[,\s]+", raw) if item)


def _values(value: object) -> tuple[str, ...]:
    """Flatten a repeatable option's value (a list of strings, or one string with one value per line)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(line.strip() for line in value.splitlines() if line.strip())
    found: list[str] = []
    for item in value:  # type: ignore[attr-defined]
        found.extend(_values(item))
    return tuple(found)


def settings_for_command(env: Mapping[str, str], **flags: object) -> Settings:
    """:class:`Settings` for the ``holoclone`` command, resolved exactly as seeding resolves them.

    Each of ``store``, ``strategy``, ``exclude``, ``lock_timeout``, ``remote`` and ``trusted_keys`` comes
    from its flag when given (not None), else ``VIRTUALENV_HOLOCLONE_<NAME>``,
    else ``holoclone_<name>`` in virtualenv.ini (found, parsed and converted by
    :mod:`holoclone_venv.virtualenv_config` as virtualenv's own readers do,
    without importing virtualenv), else its default;
    the strategy then falls back to ``RCC_HOLOTREE_STRATEGY`` and ``smart``.
    """
    from types import SimpleNamespace

    from .virtualenv_config import FLOAT, LIST, STR, VirtualenvConfig

    config = VirtualenvConfig(env)
    if flags.get("lock_timeout") is None:  # before the conversion below logs its own warning about it
        _check_number(env, LOCK_TIMEOUT_ENV, "holoclone_lock_timeout")
    kinds = {"store": STR, "strategy": STR, "exclude": LIST, "lock_timeout": FLOAT, "remote": STR, "trusted_keys": STR}
    values: dict[str, object] = {}
    for name, kind in kinds.items():
        value = flags.get(name)
        if value is None:
            found = config.get(f"holoclone_{name}", kind)
            value = found[0] if found else None
        values[f"holoclone_{name}"] = value
    if values["holoclone_lock_timeout"] is None:
        values["holoclone_lock_timeout"] = DEFAULT_LOCK_TIMEOUT
    return settings_from_options(SimpleNamespace(env=env, **values))
