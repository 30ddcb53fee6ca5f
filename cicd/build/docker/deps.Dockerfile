# Build image, part one: the base image, a venv and the dev dependencies, installed from the
# wheelhouse with the network off. `nox -s build` (cicd/flow.py) builds it only when one of its
# inputs changes (this file, the requirement files and their wheelhouse, the base image) and keeps
# it as `<images.build>-deps:<key>`; the build image of every commit (Dockerfile) starts FROM it,
# so a commit's build sends the engine the project's files, not the wheelhouse (about 230 MB).
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
FROM ${BASE_IMAGE}

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_INDEX=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app/src:/app \
    MPLBACKEND=Agg \
    GIT_PYTHON_REFRESH=quiet

RUN python3 -m venv /opt/venv

# The bytecode is compiled here, once per dependency image (about 12 s): PYTHONDONTWRITEBYTECODE
# keeps the tests from writing any, so without it every unit, lint and training run compiles
# pandas, scikit-learn and pytest again (about 5 s each). uv unpacks the wheels into a temporary
# cache on the same filesystem (--no-cache) and hard-links them into the venv: copying each file a
# second time cost about as much again as unpacking it (a cold install 37 s instead of 18, here).
COPY wheelhouse/ /wheelhouse/
COPY project/src/requirements/ /app/src/requirements/
COPY project/cicd/requirements.txt /app/cicd/requirements.txt
COPY project/cicd/build/docker/installer.txt /app/cicd/build/docker/installer.txt
RUN pip install --no-cache-dir --require-hashes --find-links /wheelhouse -r /app/cicd/build/docker/installer.txt \
 && uv pip install --no-cache --no-index --require-hashes --link-mode=hardlink --find-links /wheelhouse \
        --compile-bytecode -r /app/src/requirements/dev.txt -r /app/cicd/requirements.txt
