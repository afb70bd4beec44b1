"""MkDocs hook: MathJax served from the site itself, so that the equations render offline.

The files come from the ``jupyter-server-mathjax`` package (MathJax 2.7, Apache-2.0), which
the ``docs`` extra installs; after the build they are copied into ``assets/mathjax/`` of the
site, and ``javascripts/mathjax.js`` configures them. Nothing of MathJax is kept in the
repository.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import jupyter_server_mathjax

TARGET = Path("assets", "mathjax")
#: what the configuration in ``javascripts/mathjax.js`` loads: TeX in, HTML-CSS out with the STIX web fonts
PARTS = ("MathJax.js", "LICENSE", "config", "extensions", "fonts", "jax/input", "jax/element", "jax/output/HTML-CSS",
         "localization")


def on_post_build(config, **kwargs) -> None:
    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    target = Path(config["site_dir"]) / TARGET
    for part in PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / part, target / part)
