"""Verified downloads: stream to a temporary file, check length and SHA-256, then rename.

The destination is written with ``os.replace`` only after every check passed,
so a failed or interrupted download never leaves a file that a later run could
mistake for a good one.
"""
import hashlib
import http.client
import os
import tempfile
import urllib.request

from tqdm import tqdm

_CHUNK = 1 << 16
_USER_AGENT = "fastnn-datasets (python urllib)"


class DownloadError(OSError):
    """No mirror delivered a file with the expected SHA-256 checksum."""


def _fetch(url, out, sha256, *, timeout, progress, desc):
    """Stream ``url`` into the open binary file ``out``; raise DownloadError on any defect."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None else None
        digest = hashlib.sha256()
        received = 0
        with tqdm(total=length, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=desc, disable=not progress, leave=False) as bar:
            # http.client returns b"" instead of raising when the peer closes
            # early, so the byte count is checked against Content-Length below.
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if length is not None and received != length:
        raise DownloadError(f"connection closed after {received} of {length} bytes")
    if digest.hexdigest() != sha256:
        raise DownloadError(f"SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()}")


def download(urls, dest, sha256, *, timeout=30.0, progress=True):
    """Download the first of ``urls`` that delivers a file with checksum ``sha256``.

    Parameters
    ----------
    urls : sequence of str
        Candidate URLs of the same file, tried in order.
    dest : str or os.PathLike
        Final path. Its folder is created if needed (and removed again if the
        download fails and leaves it empty). Written atomically: a
        temporary file in the same folder is renamed onto ``dest`` only after
        the length and checksum checks passed.
    sha256 : str
        Expected hex SHA-256 digest of the file.
    timeout : float
        Seconds to wait for the server at each step (connect, each read).
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    str
        ``dest``.

    Raises
    ------
    DownloadError
        Every URL failed (unreachable, HTTP error, connection dropped mid-file,
        checksum mismatch); the message lists each URL with its reason.
        No file is left at ``dest`` nor any temporary file beside it, and the
        folders created for it are removed again when they stay empty.
    """
    dest = os.fspath(dest)
    folder, name = os.path.split(os.path.abspath(dest))
    created = _make_folders(folder)
    try:
        return _download_into(urls, dest, folder, name, sha256, timeout=timeout, progress=progress)
    except BaseException:
        _remove_if_empty(created)
        raise


def _make_folders(folder):
    """Create ``folder`` and its missing parents; return those created, deepest first."""
    created = []
    path = folder
    while not os.path.isdir(path):
        created.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    os.makedirs(folder, exist_ok=True)
    return created


def _remove_if_empty(folders):
    """Remove the folders a failed download created, deepest first, while they are empty
    (another process may have put a file there meanwhile: then they stay)."""
    for path in folders:
        try:
            os.rmdir(path)
        except OSError:
            return


def _download_into(urls, dest, folder, name, sha256, *, timeout, progress):
    failures = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, sha256, timeout=timeout, progress=progress, desc=name)
            os.replace(tmp, dest)
            return dest
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # OSError covers URLError, HTTPError, timeouts, resets and
            # DownloadError; HTTPException a cut chunked body; ValueError a
            # malformed URL or Content-Length.
            failures.append(f"  {url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DownloadError(f"could not download {name} from any mirror:\n" + "\n".join(failures))
