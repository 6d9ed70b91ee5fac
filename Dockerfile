# syntax=docker/dockerfile:1
#
# canary's container image: the `canary` binary as the entrypoint, run as a non-root user.
#
#   docker build -t canary .                      # the analyzer (the last stage)
#   docker build --target demo -t canary-demo .   # the demo service (docs/kubernetes.md)
#
# The binaries are built with the `dist` profile (Cargo.toml: LTO, one codegen unit,
# stripped) from the whole repository, with the lock file as it is. The runtime is Debian
# slim rather than distroless on purpose: CI jobs run their scripts in this image (GitLab's
# `image:` needs a shell) and policy hooks run commands (`curl` for smoke tests).
# docs/install.md says how the image is built, pinned and run; tests/run.sh lints this file
# with hadolint (no Docker engine runs where canary is tested).

# The toolchain the test suite runs on (cargo 1.95), on the same Debian release as the
# runtime stage, so the binary links against the glibc it runs with.
FROM rust:1.95.0-slim-trixie AS build
WORKDIR /src
COPY . .
# The registry and target caches (BuildKit) keep rebuilds incremental; the binary is copied
# out of the cache mount because the mount is gone in the next stage.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --locked --profile dist --package canary --bin canary \
    && mkdir -p /out \
    && cp target/dist/canary /out/

# The demo service (stable and canary versions of a small HTTP service with fault injection,
# and a load generator), for the Kubernetes walk-through.
FROM build AS build-demo
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --locked --profile dist --package canary-demo --bin canary-demo-service \
    && cp target/dist/canary-demo-service /out/

# What every image runs on: CA certificates for Prometheus over HTTPS and webhooks, curl for
# smoke-test hooks, a shell for CI jobs, and the unprivileged user 65532 (numeric, so that
# Kubernetes' runAsNonRoot can check it; examples/kubernetes/job.yaml runs as it).
FROM debian:trixie-slim AS runtime
# Package versions are left to the Debian release so that a rebuild picks up its security
# updates; pin the base image by digest (docs/install.md) for a reproducible image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 65532 --user-group --create-home --home-dir /home/canary canary
USER 65532:65532
WORKDIR /home/canary

FROM runtime AS demo
COPY --from=build-demo /out/canary-demo-service /usr/local/bin/canary-demo-service
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/canary-demo-service"]
CMD ["serve", "--version", "stable", "--listen", "0.0.0.0:8080"]

# The default target: canary itself. SIGTERM (docker stop, a cancelled CI job, an evicted
# pod) interrupts the rollout as Ctrl-C does: state persisted, reports written, exit 130.
FROM runtime AS canary
LABEL org.opencontainers.image.title="canary" \
      org.opencontainers.image.description="Progressive-delivery canary analyzer" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/canary /usr/local/bin/canary
ENTRYPOINT ["/usr/local/bin/canary"]
CMD ["--help"]
