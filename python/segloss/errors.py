"""Exceptions raised for the C library's status codes.

Every failing C call becomes an exception carrying the C status (`.status`,
the sl_status int of include/segloss/core.h) and the library's one-line
message (`.message`, also str(exc)). Each code has its own class that also
derives from the builtin a Python caller would naturally catch, so
`except ValueError` works as well as `except segloss.Error`.
"""


class Error(Exception):
    """Base of every segloss error: .status (C sl_status) and .message (C text)."""

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgumentError(Error, ValueError):
    status = 1   # SL_EINVAL


class ShapeError(Error, ValueError):
    status = 2   # SL_ESHAPE


class DTypeError(Error, TypeError):
    status = 3   # SL_EDTYPE


class RangeError(Error, ValueError):
    status = 4   # SL_ERANGE


class NonFiniteError(Error, ValueError):
    status = 5   # SL_ENONFINITE


class OutOfMemoryError(Error, MemoryError):
    status = 6   # SL_ENOMEM


class IOFailure(Error, OSError):
    status = 7   # SL_EIO

    def __init__(self, message, status=None):
        # OSError's constructor would reinterpret the arguments; keep ours.
        Error.__init__(self, message, status)

    def __str__(self):
        return self.message


class FormatError(Error, ValueError):
    status = 8   # SL_EFORMAT


class BadStateError(Error, RuntimeError):
    status = 9   # SL_EBADSTATE


class SizeOverflowError(Error, OverflowError):
    status = 10  # SL_EOVERFLOW


class UnknownNameError(Error, ValueError):
    status = 11  # SL_EUNKNOWN


class EmptyError(Error, ValueError):
    status = 12  # SL_EEMPTY


class UnsupportedError(Error, NotImplementedError):
    status = 13  # SL_EUNSUPPORTED


BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, ShapeError, DTypeError, RangeError, NonFiniteError, OutOfMemoryError,
    IOFailure, FormatError, BadStateError, SizeOverflowError, UnknownNameError, EmptyError,
    UnsupportedError)}


def from_status(status, message):
    """The exception for a C status code (Error itself for a code this version does not know)."""
    cls = BY_STATUS.get(int(status))
    if cls is None:
        return Error(message, int(status))
    return cls(message)
