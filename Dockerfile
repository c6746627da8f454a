# syntax=docker/dockerfile:1

# The embedstream worker image. The CPU build is the default; the GPU build takes
# torch from a CUDA wheel index instead:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# Choose the CUDA version (cu126, cu128, ...) that the host's NVIDIA driver supports.

FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The same lower bound as pyproject.toml, so that `pip install .` below finds torch
# already satisfied and keeps the build from TORCH_INDEX_URL.
ARG TORCH_REQUIREMENT="torch>=2.13.0"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/var/cache/huggingface

# A fixed uid, so that files in mounted volumes keep one owner across rebuilds.
RUN useradd --create-home --uid 10001 --user-group embedstream \
    && mkdir -p "${HF_HOME}" \
    && chown embedstream:embedstream "${HF_HOME}"

# torch is the largest layer and changes least, so it is installed before the sources
# are copied and stays cached across code changes.
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_REQUIREMENT}"

WORKDIR /src
COPY . .
RUN pip install . && rm -rf /src

WORKDIR /home/embedstream
USER embedstream

# The worker's web server (EMBEDSTREAM_WEB_PORT).
EXPOSE 6066

CMD ["embedstream", "worker"]
