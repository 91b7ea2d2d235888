"""The errors jaxsim raises on purpose, under one base class.

- :class:`JaxsimError`: the base of every error jaxsim raises deliberately.
- :class:`InputError`: the caller gave something unusable (a file, a field, a value, a
  label, an option); the message is one line naming it. Also a ``ValueError``.
- :class:`LabelError`: a name that is not there (an attribute, a label, a contact layer,
  a parameter, a metric). Also a ``KeyError``, whose message prints without quotes.
- :class:`MissingExtraError`: an optional extra is not installed. Also an ``ImportError``.

Command-line entry points (:func:`jaxsim.cli.run_cli`) print an :class:`InputError` as one
line and exit with status 2; any other exception, a bug in jaxsim or in JAX included,
keeps its traceback.
"""

from __future__ import annotations


class JaxsimError(Exception):
    """Base class of the errors jaxsim raises on purpose."""


class InputError(JaxsimError, ValueError):
    """Unusable input; the message names the file, field or value (one line)."""


class LabelError(InputError, KeyError):
    """A name (attribute, label, layer, parameter, metric) that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputTypeError(InputError, TypeError):
    """An argument of the wrong kind (e.g. a function where a model is needed)."""


class MissingExtraError(JaxsimError, ImportError):
    """An optional extra (e.g. ``llm-local``) that a feature needs is not installed; the
    message says how to install it."""


__all__ = ["InputError", "InputTypeError", "JaxsimError", "LabelError", "MissingExtraError"]
