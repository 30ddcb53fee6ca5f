# Release image, part one: the runtime dependencies in a venv, installed from the wheelhouse with
# the network off. `nox -s release` (cicd/flow.py) builds it only when one of its inputs changes
# (this file, the requirement files and their wheelhouse, the base image) and keeps it as
# `<images.release>-deps:<key>`; every release (Dockerfile) takes its venv from it, so releases
# share that layer (about 400 MB) and a release sends the engine its wheel and model, not the
# wheelhouse. uv (in a venv of its own that never reaches the release image) installs them,
# hard-linking each file from its temporary cache (as the build image does).
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
FROM ${BASE_IMAGE}
ENV PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# /opt/venv gets no pip and no setuptools (uv installs into it; nothing runs either there), and
# so the image ships neither; /opt/installer's pip installs the installer.
RUN python3 -m venv --without-pip /opt/venv && python3 -m venv /opt/installer
COPY wheelhouse/ /wheelhouse/
COPY requirements/ /tmp/requirements/
# Keep compiled bytecode (compileall below): without it every start compiles pandas, scikit-learn
# and scipy again (about 6 s to healthy instead of 2 s, on every deploy, swap and rollback). Drop
# the dependencies' own test suites instead, which nothing imports at run time.
RUN /opt/installer/bin/pip install --no-cache-dir --require-hashes --find-links /wheelhouse \
        -r /tmp/requirements/installer.txt \
 && /opt/installer/bin/uv pip install --python /opt/venv/bin/python --no-cache --no-index --require-hashes \
        --link-mode=hardlink --find-links /wheelhouse -r /tmp/requirements/default.txt \
 && find /opt/venv/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q -f -j 0 --invalidation-mode unchecked-hash /opt/venv/lib > /dev/null
