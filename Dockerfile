# The funnel-processor image: `funnel-processor` as the entrypoint, the stream worker by
# default (`docker run IMAGE topics create`, `... simulate ...` run the other commands).
# It runs as an unprivileged user with a fixed UID, needs no write access outside
# FUNNEL_DATA_DIR (RocksDB) and /tmp, and is configured only by FUNNEL_* variables.

# Build stage: install the package and its dependencies into a virtualenv that the
# runtime stage copies as-is (same base image, so the same paths and interpreter).
# The dependencies come from requirements.lock alone (exact versions, each file checked
# against its hashes; `make lock` writes it), so a rebuild installs the same set; the
# package goes in after them without resolving anything, and `pip check` fails the build
# if the lock no longer satisfies pyproject.toml.
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/funnel
WORKDIR /src
COPY requirements.lock ./
RUN /opt/funnel/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY processor/ processor/
RUN /opt/funnel/bin/pip install --no-deps . \
 && /opt/funnel/bin/pip check \
 && /opt/funnel/bin/funnel-processor --help > /dev/null

FROM python:3.11.13-slim-bookworm
LABEL org.opencontainers.image.title="funnel-processor" \
      org.opencontainers.image.description="Real-time funnel processor: stage transitions, drop-offs and conversion metrics on a Kafka stream" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 funnel \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin funnel \
 && install --directory --owner 10001 --group 10001 --mode 0750 /var/lib/funnel
COPY --from=build /opt/funnel /opt/funnel
# A container serves its web port on every interface; RocksDB lives in the volume. There,
# the query endpoints need FUNNEL_WEB_TOKEN (without it only /metrics and /health answer).
ENV PATH="/opt/funnel/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FUNNEL_WEB_BIND=0.0.0.0 \
    FUNNEL_WEB_PORT=6066 \
    FUNNEL_DATA_DIR=/var/lib/funnel
WORKDIR /var/lib/funnel
USER 10001:10001
VOLUME ["/var/lib/funnel"]
EXPOSE 6066
ENTRYPOINT ["funnel-processor"]
CMD ["worker"]
