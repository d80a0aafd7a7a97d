"""Raw file access: atomic writes (a temporary file next to the target, renamed over it, so a
crash leaves the old file or the new one, never a half-written one) and checked reads."""
import contextlib
import hashlib
import os
import re
import secrets

from ..errors import UserError


@contextlib.contextmanager
def atomic_path(path, durable=True):
    """Yield a temporary path in ``path``'s directory (created if missing); on success fsync it
    (if ``durable``) and ``os.replace`` it onto ``path`` (then fsync the directory); on any
    exception remove it."""
    path = os.fspath(path)
    directory = ensure_directory(os.path.dirname(os.path.abspath(path)))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{secrets.token_hex(6)}")
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise UserError(f"{path}: cannot write ({_one_line(e)})") from None
    except BaseException:
        _remove(tmp)
        raise
    if durable:
        _fsync_directory(directory)


def ensure_directory(directory) -> str:
    """Create ``directory`` (and its parents) if missing; a one-line :class:`UserError` if it cannot."""
    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise UserError(f"{directory}: cannot create the directory ({_one_line(e)})") from None
    return directory


def _remove(tmp):
    with contextlib.suppress(OSError):
        os.remove(tmp)


def _one_line(error) -> str:
    return re.sub(r"\s+", " ", str(getattr(error, "strerror", None) or error)).strip()


def _fsync_directory(directory):
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_bytes(path, what="file") -> bytes:
    """The whole content of ``path``; a missing or unreadable file is a one-line :class:`UserError`."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise UserError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{name}: is a directory, not {what}") from None
    except OSError as e:
        raise UserError(f"{name}: cannot read ({_one_line(e)})") from None


def sha256(path) -> str:
    """The SHA-256 of a file's content (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
