"""The per-run policy: which strategy, which link methods, which rules, resolved once from the plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple

from .materialize.linking import LinkMethod, Strategy, builtin_methods
from .rules import Matcher, compile_rules

if TYPE_CHECKING:
    from .platforms import TreeCloner
    from .plugins import Plugins
    from .report import Report
    from .settings import Settings


class Policy(NamedTuple):
    """Everything the materializer needs from the plugins, as plain functions and values."""

    strategy: Strategy
    never_hardlink: Matcher
    always_copy: Matcher
    copy_method: LinkMethod
    filesystem_name: Callable[[str], "str | None"]
    report: Callable[["Report"], None]
    #: The platform's whole-tree cloner when the strategy asks for whole trees, else None.
    tree: TreeCloner | None = None


def link_methods(plugins: Plugins) -> dict[str, LinkMethod]:
    """The built-in link methods, with this platform's clone backend and native copy."""
    from .platforms import current

    backend = plugins.clone_backend()
    if backend is None:
        return builtin_methods(None, current().copy)
    return builtin_methods(backend.clone, current().copy, getattr(backend, "clone_open", None))


def resolve_policy(settings: Settings, plugins: Plugins | None = None) -> Policy:
    """Resolve strategy, methods and rules for ``settings``.

    Raises :class:`~holoclone_venv.errors.ConfigError` when the strategy name
    is unknown (listing the valid names, third-party ones included).
    """
    from .settings import check_strategy

    plugins = plugins or _shared()
    methods = link_methods(plugins)
    strategies = plugins.strategies(methods)
    strategy = strategies.get(settings.strategy)
    if strategy is None:
        check_strategy(settings.strategy_typed, settings.strategy_source, list(strategies))
        raise AssertionError("unreachable: check_strategy raises for an unknown name")
    never_hardlink, always_copy = compile_rules(plugins.exclusion_rules(settings.excludes))
    from .platforms import current

    tree = current().tree
    # A whole-tree clone where asked for, or where the platform's has no side effects (a macOS directory
    # clone is a tree of ordinary clones; a btrfs snapshot is a subvolume, so only by choice).
    wanted = tree is not None and (strategy.whole_tree or (strategy.name == "smart" and tree.in_smart))
    return Policy(
        strategy=strategy,
        never_hardlink=never_hardlink,
        always_copy=always_copy,
        copy_method=methods["copy"],
        filesystem_name=plugins.filesystem_name,
        report=plugins.report,
        tree=tree if wanted else None,
    )


def strategy_names(plugins: Plugins | None = None) -> list[str]:
    """Names of every strategy, built-in and from installed plugins."""
    plugins = plugins or _shared()
    return list(plugins.strategies(link_methods(plugins)))


def _shared() -> Plugins:
    from .plugins import shared

    return shared()
