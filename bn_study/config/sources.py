"""Where the shipped configs are, in a checkout and in an installed package alike.

``conf/`` stays at the top of the checkout (the design's layout; what a user edits there), and every
install carries it as the package data of ``bn_study.conf``. pyproject.toml maps the package to the
directory (``package-dir = {"bn_study.conf" = "conf"}``) and ships every YAML file under it
(``package-data = {"bn_study.conf" = ["**/*.yaml"]}``), so a wheel (``pip install .``,
``pip install git+…``, an index) holds ``bn_study/conf/config.yaml``, ``bn_study/conf/experiment/…``.

Why a path beside the package and not Hydra's ``pkg://bn_study.conf`` (facts, setuptools 84, Python 3.11):

- An editable install (``pip install -e .``, setuptools' default "lenient" mode) imports the checkout
  through a meta-path finder, ``__editable___bn_study_*_finder.py``. For the mapped package its
  ``MAPPING`` holds ``'bn_study.conf': '<checkout>/conf'``, but the finder only returns a spec for a
  mapped directory that has an ``__init__.py``; conf/ has none (it holds YAML only), and the finder's
  namespace hook sits on ``sys.path``, which Python does not consult for a subpackage of ``bn_study``.
  So ``import bn_study.conf`` — what ``pkg://bn_study.conf`` and ``importlib.resources`` need — raises
  ModuleNotFoundError in an editable install, while it works from a wheel.
- A file path works in both: in a wheel the configs lie in ``<site-packages>/bn_study/conf``, beside the
  package; in an editable install (or a bare checkout on ``PYTHONPATH``) ``bn_study`` is the checkout's
  own directory, which has no ``conf/`` inside, and the checkout's top-level ``conf/`` is read live, so an
  edited or added YAML file counts at once, without reinstalling.
- A checkout is recognised by its pyproject.toml beside the package: then its conf/ is the one, even if
  a stray ``bn_study/conf`` copy lies in the tree. Otherwise the packaged copy is: beside an installed
  package, ``<site-packages>/conf`` is no directory of ours (it is what the old lookup found, or failed
  to find, with "Primary config directory not found …/site-packages/conf").
- Every caller — ``@hydra.main(config_path=...)`` in bn_study/app.py and the report's experiment
  catalogue — needs a real directory, which an unpacked wheel and a checkout both are.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]
# An install: the wheel puts conf/ inside the package as bn_study/conf (package data of bn_study.conf).
_INSTALLED_CONF = _PACKAGE / "conf"
# A checkout (editable install included): conf/ at the top, beside the package — what a user edits there.
_CHECKOUT_CONF = _PACKAGE.parent / "conf"


def conf_dir() -> Path:
    """The directory holding config.yaml and the config groups (an absolute path).

    The checkout's live conf/ when bn_study is imported from a checkout (an editable install), else the
    copy installed with the package. When neither has config.yaml (a broken install), the installed
    location is returned, so Hydra's "Primary config directory not found" names where the configs should be."""
    if (_PACKAGE.parent / "pyproject.toml").is_file() and (_CHECKOUT_CONF / "config.yaml").is_file():
        return _CHECKOUT_CONF
    return _INSTALLED_CONF
