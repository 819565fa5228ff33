"""Materializing catalogs into environments: linking, workers, env files, scripts, RECORD, uninstall, whole-tree clones."""
