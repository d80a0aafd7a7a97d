"""The one exception type for problems in user input (files, shapes, options).

The CLI turns a :class:`UserError` into a one-line message and a non-zero exit;
anything else is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input from the user: a wrong file, shape, value or option."""
