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
# A fixed, unprivileged user that owns the data volume.
RUN groupadd --system --gid 10001 shoebox \
    && useradd --system --uid 10001 --gid shoebox --home-dir /var/data --shell /usr/sbin/nologin shoebox \
    && mkdir -p /var/data && chown shoebox:shoebox /var/data
COPY --from=builder /src/target/release/shoebox /usr/local/bin/shoebox
USER shoebox
ENV SHOEBOX_DATA_DIR=/var/data \
    SHOEBOX_BIND=0.0.0.0 \
    PORT=8080
VOLUME /var/data
EXPOSE 8080
# The image has no curl: the binary checks itself (it reads $PORT).
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 CMD ["shoebox", "health", "--timeout", "5s"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["shoebox"]
CMD ["serve"]
