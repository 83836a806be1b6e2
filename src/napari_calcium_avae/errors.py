"""The one exception type a user of the library, the CLI or the GUI ever sees.

Everything a user can cause (a wrong file, bad samples, a model of another length)
raises :class:`CalciumAvaeError` with a one-line message that names the problem and
what to do. It is a ``ValueError``, as scikit-learn's errors for bad input and bad
parameters are, so callers that catch those catch it too. Programming errors keep their
own types so tests fail loudly.
"""


class CalciumAvaeError(ValueError):
    """A problem with the user's input, stated in one line."""


class CalciumAvaeWarning(UserWarning):
    """Something in the user's data was skipped or adjusted; the work went on."""
