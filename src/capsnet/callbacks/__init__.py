"""This project's Lightning callbacks, one a module; each has its YAML in conf/callbacks/."""
