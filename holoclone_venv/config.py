"""Settings of one seeding run, resolved from flags, virtualenv's config and the environment.

Precedence for the strategy (highest first):

1. ``--holoclone-strategy NAME`` on the command line,
2. ``VIRTUALENV_HOLOCLONE_STRATEGY`` or ``holoclone_strategy`` in virtualenv.ini
   (virtualenv itself maps both onto the flag),
3. ``RCC_HOLOTREE_STRATEGY``,
4. ``smart``.

This module is imported while virtualenv parses arguments, so it only uses
the standard library's lightest modules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from .errors import ConfigError

#: Built-in strategies: name -> one-line description.  Third-party plugins add more.
BUILTIN_STRATEGIES: dict[str, str] = {
    "smart": "reflink where the filesystem clones, else hardlink (never for excluded files), else copy",
    "reflink": "reflink, else copy",
    "hardlink": "hardlink (never for excluded files), else copy",
    "copy": "always copy",
}
DEFAULT_STRATEGY = "smart"
RCC_ENV = "RCC_HOLOTREE_STRATEGY"
STORE_ENV = "VIRTUALENV_HOLOCLONE_STORE"
#: Seconds a run waits for a store lock before it gives up with a message.
DEFAULT_LOCK_TIMEOUT = 300.0


@dataclass(frozen=True)
class Settings:
    """Everything the seeding run needs to know besides the environment itself."""

    store: str
    strategy: str
    strategy_source: str
    strict: bool = False
    excludes: tuple[str, ...] = ()
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    requirements: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)


def default_store() -> str:
    """The per-user store location: ``<user cache dir>/holoclone/store``."""
    # platformdirs is a virtualenv dependency and already imported by it.
    from platformdirs import user_cache_dir

    return os.path.join(user_cache_dir("holoclone", appauthor=False), "store")


def strategy_from(cli_value: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """Pick the strategy name and say where it came from.

    ``cli_value`` is what virtualenv parsed for ``--holoclone-strategy`` (it
    already folds in ``VIRTUALENV_HOLOCLONE_STRATEGY`` and virtualenv.ini).
    Returns ``(name, source)``; the name is stripped and lower-cased but not
    validated (third-party names are only known once plugins load).
    """
    if cli_value is not None:
        if env.get("VIRTUALENV_HOLOCLONE_STRATEGY") == cli_value:
            source = "VIRTUALENV_HOLOCLONE_STRATEGY"
        elif _ini_value(env, "holoclone_strategy") == cli_value:
            source = "holoclone_strategy in virtualenv.ini (or --holoclone-strategy)"
        else:
            source = "--holoclone-strategy"
        return cli_value.strip().lower(), source
    rcc = env.get(RCC_ENV)
    if rcc is not None:
        return rcc.strip().lower(), RCC_ENV
    return DEFAULT_STRATEGY, "default"


def check_strategy(name: str, source: str, known: Sequence[str]) -> None:
    """Raise :class:`ConfigError` unless ``name`` is one of ``known``."""
    if name in known:
        return
    what = f"unknown holoclone strategy {name!r}" if name else "the holoclone strategy name is empty"
    raise ConfigError(f"{what} (from {source}).", f"Valid strategies: {', '.join(known)}.")


def _ini_value(env: Mapping[str, str], key: str) -> str | None:
    """The raw value of ``key`` in virtualenv.ini's [virtualenv] section, if any."""
    try:
        from virtualenv.config.ini import IniConfig

        ini = IniConfig(env)
        if not ini.has_virtualenv_section:
            return None
        return ini.config_parser.get(ini.section, key, fallback=None)
    except Exception:  # an unreadable ini is virtualenv's to report
        return None


def settings_from_options(options: object) -> Settings:
    """Build :class:`Settings` from virtualenv's parsed options.

    Raises :class:`ConfigError` for an unknown or empty strategy, an empty
    exclusion pattern or a non-positive lock timeout.  Third-party strategy
    names are looked up (which loads plugins) only when a name is not built in.
    """
    env: Mapping[str, str] = getattr(options, "env", None) or os.environ
    cli_value = getattr(options, "holoclone_strategy", None)
    env_value = env.get("VIRTUALENV_HOLOCLONE_STRATEGY")
    if cli_value is None and env_value is not None:
        # virtualenv drops an env value it cannot convert; never ignore one silently.
        cli_value = env_value
    name, source = strategy_from(cli_value, env)
    if name not in BUILTIN_STRATEGIES:
        from .plugins import strategy_names

        check_strategy(name, source, strategy_names())
    store = getattr(options, "holoclone_store", None) or env.get(STORE_ENV) or default_store()
    if not str(store).strip():
        raise ConfigError("the holoclone store path is empty.", "Pass --holoclone-store DIR or unset it.")
    excludes = _values(getattr(options, "holoclone_exclude", None))
    for pattern in excludes:
        if not pattern.strip():
            raise ConfigError("an empty --holoclone-exclude pattern matches nothing.", "Remove it or give a glob.")
    timeout = float(getattr(options, "holoclone_lock_timeout", DEFAULT_LOCK_TIMEOUT))
    if not timeout > 0:
        raise ConfigError(f"--holoclone-lock-timeout must be positive, got {timeout}.")
    return Settings(
        store=os.path.abspath(os.path.expanduser(str(store))),
        strategy=name,
        strategy_source=source,
        strict=bool(getattr(options, "holoclone_strict", False)),
        excludes=tuple(p.strip() for p in excludes),
        lock_timeout=timeout,
        requirements=_values(getattr(options, "holoclone_requirements", None)),
        packages=_values(getattr(options, "holoclone_package", None)),
    )


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
