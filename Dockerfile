# syntax=docker/dockerfile:1
# Shoebox: a release binary (web page compiled in) on a minimal Debian runtime.
# Builder and runtime share one Debian release (bookworm) so the binary's glibc matches.

# Dependencies are compiled in their own layer (cargo-chef), so a code change rebuilds
# only Shoebox itself.
FROM rust:1-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin shoebox

FROM debian:bookworm-slim AS runtime
# Video posters and lengths come from ffmpeg, which adds a few hundred MB to the image;
# `--build-arg WITH_FFMPEG=0` leaves it out (uploads and everything else work without it).
ARG WITH_FFMPEG=1
# The system's root certificates: for a bucket or a PostgreSQL server reached over TLS.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && if [ "$WITH_FFMPEG" = 1 ]; then apt-get install -y --no-install-recommends ffmpeg; fi \
    && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged user that owns the data volume and serves.
RUN groupadd --system --gid 10001 shoebox \
    && useradd --system --uid 10001 --gid shoebox --home-dir /var/data --shell /usr/sbin/nologin shoebox \
    && mkdir -p /var/data && chown shoebox:shoebox /var/data && chmod 0700 /var/data
COPY --from=builder /src/target/release/shoebox /usr/local/bin/shoebox
# No USER: the container starts as root, as the official PostgreSQL image does, because a disk
# may be mounted owned by root (a fresh Render disk, a bind-mounted host directory). Shoebox
# hands an empty disk or a root-owned store to SHOEBOX_RUN_AS, then drops to that user for good
# before it opens anything; it serves, and every command run in the container works, as 10001.
ENV SHOEBOX_DATA_DIR=/var/data \
    SHOEBOX_RUN_AS=10001:10001 \
    SHOEBOX_BIND=0.0.0.0 \
    PORT=8080
VOLUME /var/data
EXPOSE 8080
# The image has no curl: the binary checks itself (it reads $PORT).
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 CMD ["shoebox", "health", "--timeout", "5s"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["shoebox"]
CMD ["serve"]
