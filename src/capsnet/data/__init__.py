"""Datasets on disk (IDX files, sources, MD5s, generated sets) and the DataModules that serve them."""
