"""Raw file access: atomic writes (a temporary file next to the target, renamed over it, so a
crash leaves the old file or the new one, never a half-written one) and checked reads."""
import contextlib
import hashlib
import os
import re
import secrets

from ..errors import UserError

try:
    import fcntl
except ImportError:  # not POSIX: outputs are not locked
    fcntl = None


@contextlib.contextmanager
def atomic_path(path, durable=True):
    """Yield a temporary path in ``path``'s directory (created if missing); on success fsync it
    (if ``durable``) and ``os.replace`` it onto ``path`` (then fsync the directory); on any
    exception remove it.

    ``path`` must be a regular file or not exist (a device or a directory is refused). The
    temporary file is ``.NAME.tmp-PID-RANDOM``: one left by a killed process (its PID no longer
    runs) is removed the next time ``path`` is written.
    """
    path = os.fspath(path)
    check_output_path(path)
    directory = ensure_directory(os.path.dirname(os.path.abspath(path)))
    base = os.path.basename(path)
    _remove_stale_temporaries(directory, base)
    tmp = os.path.join(directory, f".{base}.tmp-{os.getpid()}-{secrets.token_hex(6)}")
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


def check_output_path(path) -> None:
    """An output must be a regular file or not exist yet (never a device, pipe or directory)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory; give a file name to write")
    if os.path.exists(path) and not os.path.isfile(path):
        raise UserError(f"{path}: not a regular file; refusing to replace it")


def check_not_input(output, inputs) -> None:
    """``output`` must not be one of the ``inputs`` (a command would overwrite what it reads)."""
    for name in inputs:
        if name is not None and os.path.exists(output) and os.path.exists(name) \
                and os.path.samefile(output, name):
            raise UserError(f"{os.fspath(output)}: is also an input of this command; "
                            "write the output to another file")


def _remove_stale_temporaries(directory, base) -> None:
    pattern = re.compile(rf"\.{re.escape(base)}\.tmp-(\d+)-[0-9a-f]+")
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            match = pattern.fullmatch(name)
            if match and not _process_runs(int(match.group(1))):
                _remove(os.path.join(directory, name))


def _process_runs(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def output_lock(path):
    """Hold an exclusive lock on the output ``path`` for the whole block (a long run that rewrites
    it, such as training); a second writer gets a one-line :class:`UserError` at once.

    The lock is ``flock`` on ``.NAME.lock`` next to ``path``, removed on exit; the kernel
    releases it if the process dies, so a killed run never blocks the next one."""
    path = os.fspath(path)
    if fcntl is None:
        yield
        return
    directory = ensure_directory(os.path.dirname(os.path.abspath(path)))
    lock = os.path.join(directory, f".{os.path.basename(path)}.lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"{path}: cannot create the lock file {lock} ({_one_line(e)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{path}: another run is writing it (locked by {lock}); "
                            "wait for it to finish or choose another output") from None
        if _same_file(fd, lock):  # not removed by a run that finished between open and flock
            break
        os.close(fd)
    try:
        yield
    finally:
        _remove(lock)
        os.close(fd)


def _same_file(fd, path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


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


def one_line(text) -> str:
    """``text`` with all runs of whitespace (newlines included) collapsed to one space."""
    return re.sub(r"\s+", " ", str(text)).strip()


def _one_line(error) -> str:
    """An ``OSError`` in one line: its ``strerror`` when it has one."""
    return one_line(getattr(error, "strerror", None) or error)


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
