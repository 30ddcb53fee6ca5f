from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from sample_ml.data_loaders.base import DataLoader
from sample_ml.errors import DataSourceError
from sample_ml.schema import DIABETES, Schema

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|credential", re.IGNORECASE)
_ODBC_SECRET = re.compile(r"((?:pwd|password|secret|token|key)\s*=)\s*(\{[^}]*\}|[^;]*)", re.IGNORECASE)


def _mask(url: str) -> str:
    """The URL as it may be shown or written anywhere: the password, query parameters that look
    like secrets, and ``PWD=``-style parts of an ODBC string (``odbc_connect``) replaced by ``***``."""
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        return "<an unparseable URL>"  # it may hold anything: show nothing of it

    def hide(key: str, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        if isinstance(value, tuple):
            return tuple(str(hide(key, v)) for v in value)
        return "***" if _SECRET_KEY.search(key) else _ODBC_SECRET.sub(r"\1***", value)

    query = {key: hide(key, value) for key, value in parsed.query.items()}
    return unquote(parsed.set(query=query).render_as_string(hide_password=True))


class SQLDataLoader(DataLoader):
    """A table in any SQLAlchemy database; SQLite is the embedded default."""

    name = "sql"

    def __init__(
        self, url: str | None = None, table: str = "diabetes", schema: Schema = DIABETES, url_env: str | None = None
    ) -> None:
        """``url``, or ``url_env``: the name of an environment variable holding it (keeps a password
        out of committed settings, e.g. a CI secret)."""
        super().__init__(schema)
        self.url_env = url_env
        if url_env:
            url = os.environ.get(url_env)
            if not url:
                raise DataSourceError(f"the environment variable {url_env} (the database URL) is not set")
        if not url:
            raise DataSourceError("the sql loader needs a url (or url_env naming a variable that holds one)")
        if not _IDENT.match(table):
            raise DataSourceError(f"table name {table!r} is not a plain SQL identifier")
        self.url = url
        self.table = table

    def describe(self) -> str:
        return f"table {self.table!r} at {self._where()}"

    def _where(self) -> str:
        """The database, as it may be written anywhere: by the variable's name when it came from one."""
        return f"the database in ${self.url_env}" if self.url_env else _mask(self.url)

    def read(self) -> pd.DataFrame:
        try:
            url = sa.make_url(self.url)
        except ArgumentError:
            raise DataSourceError(
                f"{self._where()} is not a SQLAlchemy URL (e.g. sqlite:///path/to/file.sqlite)"
            ) from None
        if url.get_backend_name() == "sqlite":
            # SQLite would silently create an empty database for a missing file.
            db = url.database or ""
            if db.startswith("file:"):  # a URI filename (``?uri=true``): its path, without the query
                db = db.removeprefix("file:").split("?", 1)[0]
            if db not in ("", ":memory:") and not Path(db).is_file():
                raise DataSourceError(f"SQLite database {db!r} does not exist; check the URL")
        try:
            engine = sa.create_engine(url)
        except (NoSuchModuleError, ImportError) as err:
            raise DataSourceError(
                f"no driver for {self._where()}: {err}; install the database's SQLAlchemy driver"
            ) from err
        try:
            with engine.connect() as conn:
                if not sa.inspect(conn).has_table(self.table):
                    raise DataSourceError(f"{self.describe()} does not exist")
                return pd.read_sql_table(self.table, conn)
        except SQLAlchemyError as err:
            raise DataSourceError(
                f"cannot read {self.describe()}: {type(err).__name__}: {err.args[0] if err.args else err}; "
                "check that the database is reachable and the credentials are right"
            ) from err
        finally:
            engine.dispose()
