"""``holoclone install``: pip's plan, carried out from the store.

Modules, one job each: ``pipargs`` (the command line: holoclone's options,
pip's arguments read), ``target`` (the environment, found and asked),
``plan`` (pip's dry-run report, plan items, the plan's key and freshness;
plans are kept by ``store/plans.py``), ``fetch`` (planned wheels into the
store), ``replace`` (installed versions set aside and restored), ``apply``
(materialize, metadata, local wheels, the rest by pip), ``run`` (one install)
and ``command`` (exit codes and output).
"""
