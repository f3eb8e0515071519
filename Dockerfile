# syntax=docker/dockerfile:1
#
# The GPU route of the reproducibility package: the study's own container (NVIDIA PyTorch
# 24.11: PyTorch 2.6.0a0+df5bbc0, Python 3.12.3, CUDA 12.6.3, cuDNN 9.5.1, Ubuntu 24.04) plus,
# hash-pinned, only the pure-Python packages it lacks. The container's torch (and numpy/scipy,
# which its torch build depends on) are never replaced: the build fails if any package the
# container shipped changes version.
#
# Build (see also docker-compose.yml). Tags can be re-pushed, so pin the base by digest:
#   docker pull nvcr.io/nvidia/pytorch:24.11-py3
#   docker inspect --format '{{index .RepoDigests 0}}' nvcr.io/nvidia/pytorch:24.11-py3
#   docker build --build-arg BASE_IMAGE=nvcr.io/nvidia/pytorch@sha256:<digest> \
#       --build-arg SOURCE_COMMIT="$(git rev-parse HEAD)" -t charlm-repro .
# Run (results land in ./artifacts/full on the host, owned by you):
#   docker run --rm --gpus 1 --shm-size=8g --ulimit memlock=-1 --ulimit stack=67108864 \
#       --user "$(id -u):$(id -g)" -v "$PWD/artifacts:/artifacts" charlm-repro
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:24.11-py3
FROM ${BASE_IMAGE}

# torch.__version__ of the base image; checked before and after every install step. Change it
# only together with BASE_IMAGE (another release ships another torch).
ARG EXPECTED_TORCH_VERSION=2.6.0a0+df5bbc09d1.nv24.11
# The source commit the image is built from (recorded as a label and in the environment).
ARG SOURCE_COMMIT=unknown

LABEL org.opencontainers.image.title="charlm-repro" \
      org.opencontainers.image.description="Reproduction of the CharLM activation-function study" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${SOURCE_COMMIT}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# HOME and the caches are writable for any uid (docker-compose.yml runs as the caller's uid:gid,
# which need not exist in /etc/passwd: USER/LOGNAME stand in for it, for getpass.getuser()).
ENV HOME=/home/charlm \
    USER=charlm \
    LOGNAME=charlm \
    XDG_CACHE_HOME=/home/charlm/.cache \
    MPLCONFIGDIR=/home/charlm/.config/matplotlib \
    TORCHINDUCTOR_CACHE_DIR=/home/charlm/.cache/torchinductor \
    TRITON_CACHE_DIR=/home/charlm/.cache/triton \
    CHARLM_CACHE_DIR=/cache/charlm \
    CHARLM_SOURCE_COMMIT=${SOURCE_COMMIT} \
    CUBLAS_WORKSPACE_CONFIG=:4096:8 \
    PYTHONHASHSEED=0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/charlm-repro

# 1. A non-root user first, before anything runs Python (importing matplotlib as root would leave
#    a root-owned cache in HOME). HOME, caches and the mount points are world-writable (sticky),
#    so the image runs as charlm or as any uid:gid that `docker run --user` / compose gives it.
RUN groupadd --gid 10001 charlm \
    && useradd --no-log-init --uid 10001 --gid 10001 --create-home --home-dir /home/charlm \
         --shell /bin/bash charlm \
    && mkdir -p /home/charlm/.cache /home/charlm/.config/matplotlib /cache/charlm /artifacts \
    && chmod 1777 /home/charlm /home/charlm/.cache /home/charlm/.config \
         /home/charlm/.config/matplotlib /cache /cache/charlm /artifacts

# 2. What the container lacks, from requirements/docker.txt (hashes; --no-deps; entries whose
#    distribution the container already has are skipped whatever their version).
COPY requirements/ requirements/
RUN python requirements/container.py check --torch-version "${EXPECTED_TORCH_VERSION}" \
    && python requirements/container.py snapshot > /tmp/container-packages.json \
    && python requirements/container.py select requirements/docker.txt > /tmp/missing.txt \
    && echo "installing what the container lacks:" && cut -d' ' -f1 /tmp/missing.txt \
    && if [ -s /tmp/missing.txt ]; then \
         python -m pip install --no-cache-dir --no-deps --require-hashes -r /tmp/missing.txt \
         || { echo "could not fetch what the container lacks (above): the build needs PyPI"; \
              exit 1; }; \
       fi \
    && python requirements/container.py check --torch-version "${EXPECTED_TORCH_VERSION}" \
         --before /tmp/container-packages.json

# 3. The project, editable, from this copy (configs/ and templates/ live at the repository
#    root). Its build backend (setuptools, with the packaging release it needs: the container's
#    packaging 23.2 is too old for setuptools >= 77), hash-pinned in requirements/build.txt, is
#    put on PYTHONPATH for this step only and removed: the container's own copies stay. The
#    import check runs with a throwaway HOME, and HOME and /cache must then hold nothing of root's
#    but the sticky directories above.
COPY . .
RUN { python -m pip install --no-cache-dir --no-deps --require-hashes \
         --target /tmp/pep517 -r requirements/build.txt \
       || { echo "could not fetch requirements/build.txt (setuptools, packaging): the build" \
                 "needs PyPI (pip's messages above)"; exit 1; }; } \
    && PYTHONPATH=/tmp/pep517 python -m pip install --no-cache-dir --no-deps \
         --no-build-isolation -e . \
    && rm -rf /tmp/pep517 \
    && python requirements/container.py check --torch-version "${EXPECTED_TORCH_VERSION}" \
         --before /tmp/container-packages.json \
    && rm /tmp/container-packages.json /tmp/missing.txt \
    && HOME=/tmp/home XDG_CACHE_HOME=/tmp/home/.cache MPLCONFIGDIR=/tmp/home/mpl \
         python -m reproduce --help > /dev/null \
    && rm -rf /tmp/home \
    && leftovers=$(find /home/charlm /cache /artifacts -user 0 ! \( -type d -perm -1777 \)) \
    && if [ -n "$leftovers" ]; then echo "root-owned in HOME or a cache: $leftovers"; exit 1; fi

# numeric, so that the host can resolve it (hadolint DL3066); compose overrides it with the
# caller's uid:gid
USER 10001:10001

# Mount points (no VOLUME line, so a plain `docker run` leaves no anonymous volumes behind):
# /artifacts for results (mount a host directory so they outlive the container) and
# /cache/charlm for the downloaded tiny Shakespeare (SHA-256 checked; a named volume in compose).
# Default: the full study sweep on the GPU into the mounted /artifacts/full.
CMD ["python", "-m", "reproduce", "run", "--config", "configs/full.toml", "--out", "/artifacts/full"]
