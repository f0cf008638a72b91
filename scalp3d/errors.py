"""The one exception family of scalp3d.

Every error a user can cause (a bad file, a wrong unit, a plan value out of range, a move the safety checks refuse)
is raised as a subclass of :class:`Scalp3dError` with a one-line message that names the file, the quantity and the
fix. The CLI prints that line and exits non-zero; it never shows a traceback for these.
"""


class Scalp3dError(ValueError):
    """Base class: a one-line, user-facing message."""

    exit_code = 2


class InputError(Scalp3dError):
    """A scan, landmarks or dots file cannot be read or makes no sense."""


class UnitsError(InputError):
    """The scan's units cannot be decided; the message asks for --units or --scale."""


class PlanError(Scalp3dError):
    """The plan file (TOML) is malformed or holds an out-of-range value."""


class GeometryError(Scalp3dError):
    """The head surface does not support the requested operation (no scalp found, too incomplete...)."""


class SafetyError(Scalp3dError):
    """A needle move failed a safety check; nothing was written."""

    exit_code = 3


class PlanRefused(SafetyError):
    """The finished plan breaks a safety rule (dots closer than the spacing floor); nothing was written."""


class MissingDependencyError(Scalp3dError):
    """An optional package is needed for this operation; the message names what to install."""


def nearest_name(word, choices, cutoff: float = 0.6):
    """The known name closest to ``word`` (difflib's ratio at least ``cutoff``), or None: the one source of the
    "did you mean ...?" hints of every file scalp3d reads."""
    import difflib

    near = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=cutoff)
    return near[0] if near else None


def parse_toml(text: str, where: str) -> dict:
    """A TOML file's text as a dict; any failure is a one-line :class:`PlanError` naming ``where`` (plan files and
    machine profiles read TOML the same way)."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{where}: not valid TOML ({exc}); fix the line it names") from None
    except RecursionError:
        raise PlanError(f"{where}: not valid TOML (lists nested too deeply); fix the file") from None


def one_line(func):
    """Decorate a loader so that any :class:`Scalp3dError` it raises reads as one line: text a user wrote into a file
    (a key, a name, a value) may hold line breaks, and a message must never spill onto a second line."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Scalp3dError as exc:
            text = str(exc)
            flat = " ".join(text.split())
            if flat == text:
                raise
            raise type(exc)(flat) from None

    return wrapper
