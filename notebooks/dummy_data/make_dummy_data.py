"""Export scikit-learn's bundled diabetes data set as the template's dummy data.

Run once by a maintainer (``python notebooks/dummy_data/make_dummy_data.py``); the CSV and
SQLite files it writes are committed, so nothing is downloaded at run time. The data ships
inside scikit-learn itself; the unscaled variant keeps real units (age in years, BMI, ...).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sklearn.datasets import load_diabetes

HERE = Path(__file__).resolve().parent
TABLE = "diabetes"


def main(out_dir: Path = HERE) -> None:
    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["sex"] = frame["sex"].astype("int64")
    frame.to_csv(out_dir / "diabetes.csv", index=False)
    db = out_dir / "diabetes.sqlite"
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as conn:
        frame.to_sql(TABLE, conn, index=False)
    print(f"wrote {len(frame)} rows to {out_dir / 'diabetes.csv'} and {db} (table {TABLE!r})")


if __name__ == "__main__":
    main()
