"""Where the safety store lives, and the one-line errors of a store that cannot be opened.

The default must be one place that every launcher of a deployment shares whatever its
`$TMPDIR` (libpam-tmpdir and systemd's PrivateTmp give each user or service its own):
1. `$EMERGENCY_PIPELINE_STATE_URL`: `postgresql://user:pw@host:port/db` (several machines or
   users), `sqlite:///abs/path.sqlite`, or a plain path;
2. `$EMERGENCY_PIPELINE_LEASE_DIR/safety.sqlite` (deprecated: the old lease folder, kept so
   that existing set-ups and tests keep their own store);
3. `$DAGSTER_HOME/emergency_pipeline/safety.sqlite`: every launcher of a Dagster deployment
   (CLI, daemon, webserver, run workers) shares DAGSTER_HOME;
4. `/var/tmp/emergency_pipeline/safety.sqlite`: machine-wide (never tempfile.gettempdir()).
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

STATE_URL_ENV = "EMERGENCY_PIPELINE_STATE_URL"
LEASE_DIR_ENV = "EMERGENCY_PIPELINE_LEASE_DIR"  # deprecated: <dir>/safety.sqlite
FILE_NAME = "safety.sqlite"
MACHINE_DIR = Path("/var/tmp/emergency_pipeline")
FIX = (f"or set {STATE_URL_ENV} to a store you can write (a path, or postgresql://... shared "
       "by every host)")


class StoreUnavailable(RuntimeError):
    """The safety store cannot be used: one line naming it (password masked) and the fix."""


@dataclass(frozen=True)
class Location:
    """A resolved store: kind 'sqlite' (path) or 'postgresql' (url, with its password)."""

    kind: str
    path: Path | None = None
    url: str | None = None

    def describe(self) -> str:
        return str(self.path) if self.kind == "sqlite" else mask(self.url or "")

    def secret(self) -> str | None:
        """The URL's password, to scrub from any text (None when there is none)."""
        if self.kind != "postgresql":
            return None
        password = urlsplit(self.url or "").password
        return unquote(password) if password else None


def mask(url: str) -> str:
    """The URL with its password replaced by *** (user, host, port and database kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        text = url
    else:
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        text = parts._replace(netloc=f"{user}:***@{netloc[1]}").geturl()
    # A password given as a query parameter (?password=...) too.
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", text)


def scrub(text: str, location: Location) -> str:
    """Text (a driver's error) with the store's password masked wherever it appears."""
    secret = location.secret()
    if location.url:
        text = text.replace(location.url, location.describe())
    return text.replace(secret, "***") if secret else text


def resolve(url: str | os.PathLike[str] | None = None) -> Location:
    """The store named by `url` (a URL or a path), else by the environment (docstring)."""
    given = (os.fspath(url) if url is not None else os.environ.get(STATE_URL_ENV, "")).strip()
    if given:
        scheme = urlsplit(given).scheme.lower()
        if scheme in ("postgresql", "postgres"):
            return Location("postgresql", url=given)
        if scheme == "sqlite":
            path = given.split("://", 1)[1]  # sqlite:///abs/x: an empty host, then /abs/x
            if not path.startswith("/"):
                raise StoreUnavailable(f"the safety store URL {mask(given)} has no absolute "
                                       "path: write sqlite:///abs/path.sqlite, or the plain "
                                       f"path, in {STATE_URL_ENV}")
            # sqlite:////abs/x (SQLAlchemy's spelling) names the same file.
            return Location("sqlite", path=Path("/" + path.lstrip("/")))
        if scheme and len(scheme) > 1:  # not a Windows drive letter, not a plain path
            raise StoreUnavailable(f"the safety store URL {mask(given)} is neither "
                                   "postgresql://, sqlite:/// nor a path: fix "
                                   f"{STATE_URL_ENV}")
        return Location("sqlite", path=Path(given).expanduser().absolute())
    legacy = os.environ.get(LEASE_DIR_ENV, "").strip()
    if legacy:
        return Location("sqlite", path=Path(legacy).absolute() / FILE_NAME)
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if home:
        return Location("sqlite", path=Path(home).absolute() / "emergency_pipeline" / FILE_NAME)
    return Location("sqlite", path=MACHINE_DIR / FILE_NAME)


def prepare_folder(path: Path) -> None:
    """Create the store's folder (and file) so that the deployment's users can all use it.

    Under $DAGSTER_HOME the folder takes DAGSTER_HOME's own mode (whoever may write Dagster's
    storage may write ours); the machine-wide default is made like /tmp (0o1777, files 0o666):
    the store coordinates honest runs, it is no security boundary. A configured folder is
    created with the process's usual permissions: its owner chooses who shares it.
    """
    folder = path.parent
    if folder.is_dir():
        check_writable(path)
        return
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if folder == MACHINE_DIR:
        mode, file_mode = 0o1777, 0o666
    elif home and folder == Path(home).absolute() / "emergency_pipeline" and Path(home).is_dir():
        mode = stat.S_IMODE(Path(home).stat().st_mode)
        file_mode = mode & 0o666
    else:
        mode = file_mode = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if mode is not None:
            os.chmod(folder, mode)  # chmod: mkdir's mode is cut by the umask
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, file_mode)
            os.fchmod(fd, file_mode)  # an empty file is a valid SQLite database
            os.close(fd)
    except FileExistsError:
        pass  # another process got there first
    except OSError as exc:
        raise StoreUnavailable(explain(path, exc.strerror or str(exc))) from None
    check_writable(path)


def check_writable(path: Path) -> None:
    """StoreUnavailable unless this user can create and write the store's file and its
    -wal/-shm companions (SQLite otherwise fails late with 'unable to open database file')."""
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreUnavailable(explain(path, "cannot write its folder"))
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreUnavailable(explain(path, "cannot write the file"))


def explain(path: Path, problem: str) -> str:
    """One line: the store, why it cannot be opened (owner and mode of the folder), the fix."""
    folder = path.parent
    try:
        st = (path if path.exists() else folder).stat()
        owner = _user(st.st_uid)
        what = "file" if path.exists() else "folder"
        seen = f"{what} owned by user {owner}, mode {stat.S_IMODE(st.st_mode):04o}"
    except OSError:
        seen = f"folder {folder} missing or unreadable"
    return (f"the safety store {path} cannot be opened ({problem}; {seen}, this process runs "
            f"as {_user(os.geteuid())}): make it group-writable for the deployment's users "
            f"(chmod g+w, shared group), {FIX}")


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
