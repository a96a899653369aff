# SphereCorr image (spherecorr-server, and spherecorr-train for Jobs): `docker build -t spherecorr .` then
#   docker run -p 8080:8080 -v "$PWD/bundles:/bundles:ro" -v "$PWD/weights:/weights:ro" \
#     spherecorr --backbone /weights/dinov2-base
# Without --backbone it serves the built-in demo model (random weights; /v1/info and X-Model-Version say so).
# Model weights and bundles are never baked in: mount them (bundles hot-reload from /bundles).

ARG SWIFT_IMAGE=swift:6.3.1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------- build stage
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config libopenblas-dev libdnnl-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Both executables: the same image runs the server (the entrypoint) and the trainer or evaluator as a Job
# (deploy/kubernetes: command /app/spherecorr-train). By product: a plain `swift build` would also build TestSupport,
# which needs the Testing module. .build is a cache mount, so a rebuild after a source edit recompiles only what
# changed and keeps the resolved dependencies; the binaries leave it through /staging.
RUN --mount=type=cache,target=/src/.build \
    swift build -c release --static-swift-stdlib --product spherecorr-server \
 && swift build -c release --static-swift-stdlib --product spherecorr-train \
 && mkdir -p /staging \
 && bin="$(swift build -c release --static-swift-stdlib --show-bin-path)" \
 && cp "$bin/spherecorr-server" /staging/ \
 && cp "$bin/spherecorr-train" /staging/ \
 && cp /usr/libexec/swift/linux/swift-backtrace-static /staging/ \
 && strip /staging/spherecorr-server /staging/spherecorr-train

# ---------------------------------------------------------------- runtime stage
FROM ${RUNTIME_IMAGE} AS runtime
# Only what the binary links (checked against `ldd` of the release binary by Tests/service/test_deploy.py):
# OpenBLAS, oneDNN (+ OpenMP), libjpeg-turbo, libpng, OpenSSL's libcrypto (SHA-256). libc, libstdc++, libgcc and
# zlib come with the base image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas0 libdnnl2 libjpeg62-turbo libpng16-16 libgomp1 libssl3 ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*
# A numeric, non-root user (Kubernetes runAsNonRoot can only verify a numeric USER).
RUN groupadd --system --gid 10001 spherecorr \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin spherecorr \
 && mkdir -p /bundles /app \
 && chown 10001:10001 /bundles
COPY --from=build --chown=0:0 /staging/ /app/
ENV SPHERECORR_HOST=0.0.0.0 \
    SPHERECORR_PORT=8080 \
    SPHERECORR_ADMIN_HOST=127.0.0.1 \
    SPHERECORR_ADMIN_PORT=8081 \
    SPHERECORR_BUNDLES=/bundles \
    SPHERECORR_LOG_FORMAT=json \
    SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/app/swift-backtrace-static
LABEL org.opencontainers.image.title="spherecorr-server" \
      org.opencontainers.image.description="Semantic correspondences over HTTP: DINOv2 features, sphere maps, matches" \
      org.opencontainers.image.version="0.1.0"
VOLUME ["/bundles"]
EXPOSE 8080
USER 10001:10001
STOPSIGNAL SIGTERM
# Exec form: the server is PID 1 and receives SIGTERM itself (readiness 503, drain, exit 0).
ENTRYPOINT ["/app/spherecorr-server"]
